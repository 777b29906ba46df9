#!/bin/sh
# edgetls: everything the demo stack needs before HAProxy starts, for `make demo`
# (scripts/demo.sh) and docker-compose.yml (the one-shot `init` service):
#   1. the throw-away PKI and TSIG secret        (pki.sh, idempotent)
#   2. certsync.conf, spoe-mtls.conf, haproxy.cfg (render.sh); with EDGETLS_ACME=1 also
#      the ACME lab's knot.conf, unbound.conf, unbound-pebble.conf, pebble-config.json
#   3. certsync check, certsync compile: the crt-lists, maps and policy.pb HAProxy and the
#      agent read at start must exist before either starts
#   4. haproxy -c, when haproxy is on PATH (the compose haproxy service checks again)
#
# Environment: EDGETLS_CONF_DIR (where certsync.conf, spoe-mtls.conf and haproxy.cfg go),
# EDGETLS_STATE_DIR, EDGETLS_PKI_DIR, EDGETLS_ADMIN_SOCK, and optionally EDGETLS_LISTEN,
# EDGETLS_ACME, EDGETLS_KNOT_DIR, EDGETLS_UNBOUND_DIR, DEMO_*_PORT (see render.sh);
# CERTSYNC (default: certsync on PATH).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${EDGETLS_CONF_DIR:?set EDGETLS_CONF_DIR}"
: "${EDGETLS_PKI_DIR:?set EDGETLS_PKI_DIR}"
CERTSYNC=${CERTSYNC:-certsync}
EDGETLS_SPOE_CONF=$EDGETLS_CONF_DIR/spoe-mtls.conf
export EDGETLS_SPOE_CONF

mkdir -p "$EDGETLS_CONF_DIR"
sh "$here/pki.sh" "$EDGETLS_PKI_DIR"
sh "$here/render.sh" certsync-conf >"$EDGETLS_CONF_DIR/certsync.conf"
sh "$here/render.sh" spoe-conf >"$EDGETLS_CONF_DIR/spoe-mtls.conf"
sh "$here/render.sh" haproxy-cfg >"$EDGETLS_CONF_DIR/haproxy.cfg"
if [ "${EDGETLS_ACME:-0}" = 1 ]; then
	sh "$here/render.sh" knot-conf >"$EDGETLS_CONF_DIR/knot.conf"
	sh "$here/render.sh" unbound-conf >"$EDGETLS_CONF_DIR/unbound.conf"
	sh "$here/render.sh" unbound-pebble-conf >"$EDGETLS_CONF_DIR/unbound-pebble.conf"
	sh "$here/render.sh" pebble-config >"$EDGETLS_CONF_DIR/pebble-config.json"
fi
"$CERTSYNC" -c "$EDGETLS_CONF_DIR/certsync.conf" check >/dev/null
"$CERTSYNC" -c "$EDGETLS_CONF_DIR/certsync.conf" compile >/dev/null
if command -v haproxy >/dev/null 2>&1; then
	haproxy -c -q -f "$EDGETLS_CONF_DIR/haproxy.cfg"
fi
