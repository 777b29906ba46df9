#!/usr/bin/env bash
# make demo: the whole edgetls stack on loopback, from a fresh Debian bookworm machine.
#   scripts/demo.sh start | stop
# Everything lives in build/demo (PKI, configuration, state, logs, pid files). Starting
# again stops the previous demo first. Ports (override in the environment):
#   DEMO_HTTPS_PORT=8443  DEMO_AGENT_PORT=19345  DEMO_AGENT_METRICS=9466
#   DEMO_CERTSYNC_METRICS=9465  DEMO_ORIGIN_PORT=18080
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
D=$ROOT/build/demo
RUN=$D/run
HTTPS=${DEMO_HTTPS_PORT:-8443}
AGENT=${DEMO_AGENT_PORT:-19345}
AGENT_METRICS=${DEMO_AGENT_METRICS:-9466}
CS_METRICS=${DEMO_CERTSYNC_METRICS:-9465}
ORIGIN=${DEMO_ORIGIN_PORT:-18080}
BIN=$ROOT/build/bin
MODES="required optional optional-no-ca permissive disabled"

stop() {
	local f pid
	for f in "$RUN"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
}

wait_for() { # description test-command...
	local what=$1
	shift
	for _ in $(seq 1 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "demo: $what did not come up; logs are in $RUN" >&2
	exit 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pki() {
	local p=$D/pki
	mkdir -p "$p"
	[ -e "$p/done" ] && return 0
	cd "$p"
	# The server side: a private CA that certsync trusts for uploads (upload_ca_file),
	# and one wildcard certificate uploaded once for every demo hostname.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-keyout server-ca.key -out server-ca.pem -subj "/O=edgetls demo/CN=Demo Server CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout wildcard.key \
		-out wildcard.csr -subj "/CN=*.demo.test" 2>/dev/null
	printf 'subjectAltName=DNS:*.demo.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >wildcard.ext
	openssl x509 -req -in wildcard.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial \
		-days 365 -extfile wildcard.ext -out wildcard.pem 2>/dev/null
	# HAProxy's default certificate, for connections whose SNI matches no hostname.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-keyout default.key -out default.crt -subj "/CN=edgetls demo default" 2>/dev/null
	cat default.crt default.key >default.pem
	# The client side: a CA the mTLS environments trust, and a client certificate.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-keyout client-ca.key -out client-ca.pem -subj "/O=ACME Inc./CN=ACME Client CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
		-out client.csr -subj "/O=ACME Inc./CN=alice" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' >client.ext
	openssl x509 -req -in client.csr -CA client-ca.pem -CAkey client-ca.key -CAcreateserial \
		-days 365 -extfile client.ext -out client.pem 2>/dev/null
	touch done
	cd "$ROOT"
}

config() {
	local m sep=""
	{
		echo "# The demo's certsync configuration: one environment per mTLS mode."
		echo "state_dir = \"$D/state\";"
		echo "haproxy: { runtime_api = \"unix:$RUN/admin.sock\"; };"
		echo "agent: { policy_file = \"$D/state/policy.pb\"; };"
		echo "metrics_listen = \"127.0.0.1:$CS_METRICS\";"
		echo "upload_ca_file = \"$D/pki/server-ca.pem\";"
		echo "environments = ("
		for m in $MODES; do
			printf '%s  { name = "%s"; network = "demo"; hostnames = [ "%s.demo.test" ];\n' \
				"$sep" "$m" "$m"
			sep=","
			if [ "$m" = disabled ]; then
				echo '    mtls: { validation = "disabled"; }; }'
			elif [ "$m" = optional-no-ca ]; then
				echo "    mtls: { validation = \"$m\"; send_headers = true; }; }"
			else
				echo "    mtls: { validation = \"$m\"; depth = 1; send_headers = true;"
				echo "      chains = ( { hostnames = [ \"$m.demo.test\" ]; file = \"$D/pki/client-ca.pem\"; } ); }; }"
			fi
		done
		echo ");"
	} >"$D/certsync.conf"
}

haproxy_cfg() {
	local lists="" m
	for m in $MODES; do lists="$lists crt-list $D/state/haproxy/$m.crt-list"; done
	# The shipped example, pointed at the demo's files and ports.
	sed -e "s#crt /etc/haproxy/default.pem crt-list /var/lib/edgetls/haproxy/production.crt-list#crt $D/pki/default.pem$lists#" \
		-e "s#/var/lib/edgetls/haproxy/#$D/state/haproxy/#g" \
		-e "s#/etc/haproxy/spoe-mtls.conf#$ROOT/haproxy/spoe-mtls.conf#g" \
		-e "s#/run/haproxy/admin.sock#$RUN/admin.sock#g" \
		-e "s#^\([[:space:]]*\)log /dev/log local0#\1log stderr format raw local0 info#" \
		-e "s#^\([[:space:]]*bind \):443 #\1127.0.0.1:$HTTPS #" \
		-e "s#127\.0\.0\.1:12345#127.0.0.1:$AGENT#g" \
		-e "s#127\.0\.0\.1:8080#127.0.0.1:$ORIGIN#g" \
		haproxy/haproxy.cfg >"$D/haproxy.cfg"
}

start() {
	local p m
	stop
	scripts/deps.sh demo
	make -j2 all >"$ROOT/build/demo-build.log" 2>&1 || {
		tail -30 "$ROOT/build/demo-build.log"
		exit 1
	}
	mkdir -p "$RUN"
	for p in "$HTTPS" "$AGENT" "$AGENT_METRICS" "$CS_METRICS" "$ORIGIN"; do
		port_free "$p" || { echo "demo: port $p is in use (see the DEMO_*_PORT variables)" >&2; exit 1; }
	done
	pki
	config
	"$BIN/certsync" -c "$D/certsync.conf" check >/dev/null
	"$BIN/certsync" -c "$D/certsync.conf" compile >/dev/null
	haproxy_cfg
	haproxy -c -q -f "$D/haproxy.cfg"

	python3 scripts/echo-origin.py "$ORIGIN" >"$RUN/origin.log" 2>&1 &
	echo $! >"$RUN/origin.pid"
	"$BIN/spoa-mtls" --listen "127.0.0.1:$AGENT" --metrics "127.0.0.1:$AGENT_METRICS" \
		--policy "$D/state/policy.pb" >"$RUN/spoa-mtls.log" 2>&1 &
	echo $! >"$RUN/spoa-mtls.pid"
	haproxy -db -f "$D/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
	echo $! >"$RUN/haproxy.pid"
	wait_for "HAProxy" test -S "$RUN/admin.sock"
	"$BIN/certsync" -c "$D/certsync.conf" run >"$RUN/certsync.log" 2>&1 &
	echo $! >"$RUN/certsync.pid"
	wait_for "certsync" test -S "$D/state/control.sock"
	wait_for "the agent" curl -sf "http://127.0.0.1:$AGENT_METRICS/metrics"

	# One wildcard certificate, uploaded once, serves every demo hostname (one network).
	"$BIN/certsync" -c "$D/certsync.conf" upload --cert "$D/pki/wildcard.pem" \
		--chain "$D/pki/server-ca.pem" --key "$D/pki/wildcard.key" >"$RUN/upload.log"
	for m in $MODES; do
		wait_for "the certificate of $m.demo.test" sh -c "openssl s_client -connect 127.0.0.1:$HTTPS \
			-servername $m.demo.test </dev/null 2>/dev/null | grep -q 'CN = \*.demo.test'"
	done
	tour
}

tour() {
	local C="curl -s --cacert $D/pki/server-ca.pem"
	cat <<EOF

edgetls demo is running (logs and pid files in $RUN; stop it with: make demo-stop)

  HTTPS edge      https://<mode>.demo.test:$HTTPS   (HAProxy; resolve with --resolve)
  origin          http://127.0.0.1:$ORIGIN            (echoes the headers it receives)
  agent metrics   http://127.0.0.1:$AGENT_METRICS/metrics
  certsync        http://127.0.0.1:$CS_METRICS/metrics

Try, for each mode (required, optional, optional-no-ca, permissive, disabled):

  # without a client certificate
  $C --resolve optional.demo.test:$HTTPS:127.0.0.1 https://optional.demo.test:$HTTPS/
  # with one
  $C --cert $D/pki/client.pem --key $D/pki/client.key \\
       --resolve optional.demo.test:$HTTPS:127.0.0.1 https://optional.demo.test:$HTTPS/
  # a client trying to forge the verdict: the header never reaches the origin
  $C -H 'x-ssl-client-verify: SUCCESS' --resolve disabled.demo.test:$HTTPS:127.0.0.1 https://disabled.demo.test:$HTTPS/

  # which certificate each hostname is served, and whether HAProxy serves it
  $BIN/certsync -c $D/certsync.conf status
  # one NOTIFY per TLS connection, whatever the number of requests on it
  curl -s http://127.0.0.1:$AGENT_METRICS/metrics | grep -E '^spoa_mtls_(notify_processed|connections)'
EOF
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
tour) tour ;;
*) echo "usage: $0 start|stop|tour" >&2; exit 2 ;;
esac
