#!/usr/bin/env bash
# Runs the test suites and prints one closing line: "N passed, N failed".
#   tests/run.sh [unit|conformance|e2e]...   (default: all three)
# unit and conformance run for every build that exists (build/ and build/san/, the
# ASan/UBSan one); e2e runs the real HAProxy against build/bin/spoa-mtls.
set -u
cd "$(dirname "$0")/.."
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(unit conformance e2e)

pass=0
fail=0
failed=()
logdir=build/test-logs
mkdir -p "$logdir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run() { # name command...
	local name=$1 log
	shift
	log="$logdir/$(echo "$name" | tr '/ ' '__').log"
	printf '%-58s ' "$name"
	local t0=$SECONDS
	if "$@" >"$log" 2>&1; then
		pass=$((pass + 1))
		echo "ok ($((SECONDS - t0))s)"
	else
		fail=$((fail + 1))
		failed+=("$name")
		echo "FAILED ($((SECONDS - t0))s), log: $log"
		tail -n 30 "$log" | sed 's/^/    | /'
	fi
}

for suite in "${suites[@]}"; do
	case $suite in
	unit)
		for b in build build/san; do
			for t in "$b"/tests/test_*; do
				[ -x "$t" ] && run "unit: $t" "$t"
			done
		done
		;;
	conformance)
		for b in build build/san; do
			[ -x "$b/tests/conformance" ] && [ -x "$b/bin/spoa-mtls" ] &&
				run "conformance: $b/bin/spoa-mtls" env SPOA_MTLS="$b/bin/spoa-mtls" \
					"$b/tests/conformance"
		done
		;;
	e2e)
		for t in tests/e2e/*.sh; do
			case $(basename "$t") in lib.sh | lib_*.sh) continue ;; esac
			run "e2e: $t" env BUILD=build bash "$t"
		done
		# The daemons' request paths once more under ASan/UBSan (halt on error).
		if [ -x build/san/bin/spoa-mtls ] && [ -x build/san/bin/certsync ]; then
			for t in tests/e2e/mtls_matrix.sh tests/e2e/certsync_haproxy.sh; do
				run "e2e (asan): $t" env BUILD=build/san bash "$t"
			done
		fi
		;;
	*)
		echo "unknown suite: $suite" >&2
		exit 2
		;;
	esac
done

echo
for f in "${failed[@]+"${failed[@]}"}"; do
	echo "failed: $f"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
