#!/usr/bin/env bash
# The demo's tour as a test: start `scripts/demo.sh` (the command behind `make demo`) on
# free ports in a temp dir, run every command its tour prints and check the result the
# tour announces ("=> expect: TEXT", "=> expect: !TEXT" or "=> expect: exit N|M"), then
# `scripts/demo.sh stop` must stop exactly what it started.
#
# Usage: BUILD=build bash tests/e2e/demo.sh   (the demo builds with `make all` itself)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need curl openssl python3 haproxy
e2e_init

read -r P1 P2 P3 P4 P5 <<<"$(free_ports 5)"
[ -n "$P5" ] || die "could not pick free ports"
export DEMO_DIR=$E2E_TMP/demo DEMO_HTTPS_PORT=$P1 DEMO_AGENT_PORT=$P2 DEMO_AGENT_METRICS=$P3 \
	DEMO_CERTSYNC_METRICS=$P4 DEMO_ORIGIN_PORT=$P5

section "start the demo"
out=$(bash "$E2E_ROOT/scripts/demo.sh" start 2>&1)
rc=$?
printf '%s\n' "$out" >"$E2E_TMP/demo-start.log"
assert_eq "scripts/demo.sh start exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || { tail -n 30 "$E2E_TMP/demo-start.log"; die "the demo did not start"; }
pids=$(cat "$DEMO_DIR"/run/*.pid 2>/dev/null | tr '\n' ' ')
log "demo processes: $pids"
assert_eq "four processes started (origin, agent, HAProxy, certsync)" 4 "$(echo $pids | wc -w)"

section "the tour, command by command"
n=0
expect=""
while IFS= read -r line; do
	case $line in
	*"=> expect: "*)
		expect=${line##*=> expect: }
		what=${line#*# }
		what=${what%% =>*}
		continue
		;;
	"  curl "* | "  /"*"/certsync "*)
		[ -n "$expect" ] || continue
		cmd=${line#  }
		got=$(bash -c "$cmd" 2>&1)
		code=$?
		n=$((n + 1))
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
		*)
			assert_contains "$what" "$got" "$expect"
			;;
		esac
		expect=""
		;;
	esac
done <<<"$out"
assert_lt "the tour has commands to run (count > 10)" 10 "$n"

section "make demo twice is safe"
out2=$(bash "$E2E_ROOT/scripts/demo.sh" start 2>&1)
assert_eq "a second start exits 0" 0 "$?"
printf '%s\n' "$out2" >"$E2E_TMP/demo-start2.log"
pids2=$(cat "$DEMO_DIR"/run/*.pid 2>/dev/null | tr '\n' ' ')
for p in $pids; do
	if kill -0 "$p" 2>/dev/null; then fail_ "first demo's pid $p stopped by the second start" "still running"; else pass_ "first demo's pid $p stopped by the second start"; fi
done

section "demo-stop stops exactly what it started"
bash "$E2E_ROOT/scripts/demo.sh" stop
assert_eq "scripts/demo.sh stop exits 0" 0 "$?"
for p in $pids2; do
	if kill -0 "$p" 2>/dev/null; then fail_ "pid $p stopped" "still running"; else pass_ "pid $p stopped"; fi
done
assert_eq "no pid file left" 0 "$(find "$DEMO_DIR/run" -name '*.pid' | wc -l)"

e2e_finish
