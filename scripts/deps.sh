#!/bin/sh
# Installs the Debian packages kvorum needs to build, test and benchmark,
# when any is missing. Run as root on Debian 12 (make does this for you).
set -e
PKGS="build-essential cmake pkg-config libuv1-dev librocksdb-dev libxxhash-dev
libmsgpack-dev clang libclang-rt-14-dev iproute2 nftables procps libssl-dev
redis-server redis-tools python3 python3-redis python3-yaml prometheus curl libh2o-dev
libinih-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "kvorum: missing Debian packages:$missing" >&2
  echo "kvorum: run as root, or: sudo apt-get install$missing" >&2
  exit 1
fi
echo "kvorum: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts redis-server and prometheus as services on install; the
# benchmarks and tests start their own, so the packaged ones are not needed
# on ports 6379 and 9090.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now redis-server prometheus >/dev/null 2>&1 || true
fi
