#!/usr/bin/env bash
# The demo's tour as a test: start `scripts/demo.sh` (the command behind `make demo`) on
# free ports in a temp dir, run every command its tour prints and check the result the
# tour announces ("=> expect: TEXT", "=> expect: A && B" (each), "=> expect: !TEXT" or
# "=> expect: exit N|M"), then `scripts/demo.sh stop` must stop exactly what it started.
# The demo includes the ACME lab (knot, two unbounds, Pebble): certsync issues the
# `customers` hostnames from Pebble before the tour is printed, and again after the second
# start (a new Pebble, a fresh state), whose tour is run too.
#
# Usage: BUILD=build bash tests/e2e/demo.sh   (the demo builds with `make all` itself)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need curl openssl python3 haproxy knotd kdig unbound pebble base32
e2e_init

# Every port of deploy/compose/ports.env, picked free here.
read -r P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 <<<"$(free_ports 10)"
[ -n "$P10" ] || die "could not pick free ports"
export DEMO_DIR=$E2E_TMP/demo DEMO_HTTPS_PORT=$P1 DEMO_AGENT_PORT=$P2 DEMO_AGENT_METRICS=$P3 \
	DEMO_CERTSYNC_METRICS=$P4 DEMO_ORIGIN_PORT=$P5 DEMO_KNOT_PORT=$P6 DEMO_UNBOUND_PORT=$P7 \
	DEMO_PEBBLE_DNS_PORT=$P8 DEMO_PEBBLE_PORT=$P9 DEMO_PEBBLE_MGMT_PORT=$P10
while IFS='=' read -r k _; do
	case $k in DEMO_*) [ -n "${!k:-}" ] || die "ports.env has $k, which this test does not pick" ;; esac
done <"$E2E_ROOT/deploy/compose/ports.env"

section "start the demo"
out=$(bash "$E2E_ROOT/scripts/demo.sh" start 2>&1)
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/demo-start.log"
assert_eq "scripts/demo.sh start exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || { tail -n 30 "$E2E_TMP/demo-start.log"; die "the demo did not start"; }
pids=$(cat "$DEMO_DIR"/run/*.pid 2>/dev/null | tr '\n' ' ')
log "demo processes: $pids"
assert_eq "eight processes started (origin, agent, HAProxy, certsync, knot, two unbounds, Pebble)" \
	8 "$(wc -w <<<"$pids")"
for p in $P1 $P2 $P3 $P4 $P5 $P6 $P7 $P8 $P9 $P10; do
	if port_open "$p"; then pass_ "something listens on picked port $p"; else fail_ "picked port $p" "nothing listens"; fi
done
for h in www.customer1.test shop.customer2.test; do
	assert_contains "start waited until certsync issued $h" "$out" "demo:   $h: issued and served"
done
assert_contains "start saw the undelegated hostname checked" "$out" "demo:   api.customer2.test: not delegated"

# run_tour OUTPUT LABEL: every command of the tour in OUTPUT, checked; sets n (commands run)
# and acme (commands run in the ACME section)
run_tour() {
	local line expect="" what cmd got code codes e section=""
	n=0 acme=0
	while IFS= read -r line; do
		case $line in
		"  ## "*) section=${line#  ## } ;;
		*"=> expect: "*)
			expect=${line##*=> expect: }
			what="$2${line#*# }"
			what=${what%% =>*}
			continue
			;;
		"  curl "* | "  openssl "* | "  /"*"/certsync "*)
			[ -n "$expect" ] || continue
			cmd=${line#  }
			got=$(bash -c "$cmd" 2>&1)
			code=$?
			n=$((n + 1))
			[[ $section == ACME* ]] && acme=$((acme + 1))
			printf '%s\n--- %s\n%s\n' "$cmd" "exit $code" "$got" >>"$E2E_TMP/tour.log"
			case $expect in
			exit\ *)
				codes=" ${expect#exit } "
				codes=${codes//|/ }
				if [[ $codes == *" $code "* ]]; then pass_ "$what (exit $code)"; else
					fail_ "$what" "expected exit ${expect#exit }, got $code"
				fi
				;;
			!*)
				assert_eq "$what: command succeeds" 0 "$code"
				assert_not_contains "$what" "$got" "${expect#!}"
				;;
			*" && "*)
				while [ -n "$expect" ]; do
					e=${expect%% && *}
					assert_contains "$what: $e" "$got" "$e"
					[ "$e" = "$expect" ] && expect="" || expect=${expect#* && }
				done
				;;
			*)
				assert_contains "$what" "$got" "$expect"
				;;
			esac
			expect=""
			;;
		esac
	done <<<"$1"
}

section "the tour, command by command"
run_tour "$out" ""
assert_lt "the tour has commands to run (count > 15)" 15 "$n"
assert_lt "the ACME section has commands to run (count > 4)" 4 "$acme"

section "make demo twice is safe"
out2=$(bash "$E2E_ROOT/scripts/demo.sh" start 2>&1)
assert_eq "a second start exits 0" 0 "$?"
printf '%s\n' "$out2" >"$E2E_TMP/demo-start2.log"
pids2=$(cat "$DEMO_DIR"/run/*.pid 2>/dev/null | tr '\n' ' ')
assert_eq "the second start runs eight processes" 8 "$(wc -w <<<"$pids2")"
for p in $pids; do
	if kill -0 "$p" 2>/dev/null; then fail_ "first demo's pid $p stopped by the second start" "still running"; else pass_ "first demo's pid $p stopped by the second start"; fi
done
# A new Pebble (new root, no accounts): the second demo's certificates are its own.
run_tour "$out2" "(second start) "
assert_lt "(second start) the ACME section has commands to run (count > 4)" 4 "$acme"

section "demo-stop stops exactly what it started"
bash "$E2E_ROOT/scripts/demo.sh" stop
assert_eq "scripts/demo.sh stop exits 0" 0 "$?"
for p in $pids2; do
	if kill -0 "$p" 2>/dev/null; then fail_ "pid $p stopped" "still running"; else pass_ "pid $p stopped"; fi
done
assert_eq "no pid file left" 0 "$(find "$DEMO_DIR/run" -name '*.pid' | wc -l)"

e2e_finish
