#!/bin/sh
# Install the Debian bookworm packages edgetls needs, only those missing.
# Usage: scripts/deps.sh build|test|demo   (test and demo include build)
# Daemons from these packages are not started by the install: the tests and the
# demo start their own instances on loopback.
set -eu

build="gcc make pkg-config libc6-dev libssl-dev libev-dev libprotobuf-c-dev
protobuf-c-compiler libmicrohttpd-dev libconfig-dev libjansson-dev libldns-dev
libcurl4-openssl-dev"
test="libcmocka-dev clang libclang-rt-14-dev haproxy curl openssl prometheus
python3 procps iproute2 clang-format pebble knot knot-dnsutils unbound socat
bc docker-compose"

case "${1:-build}" in
build) want=$build ;;
test | demo) want="$build $test" ;;
*) echo "usage: $0 build|test|demo" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
# Keep the packages' own services from starting (tests run their own).
prc=/usr/sbin/policy-rc.d
made_prc=""
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc" && made_prc=1
fi
trap '[ -n "$made_prc" ] && rm -f "$prc"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
