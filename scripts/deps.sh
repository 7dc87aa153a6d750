#!/bin/sh
# Installs the Debian packages kura needs to build and test, if missing.
set -e
PKGS="build-essential clang libclang-rt-14-dev liburing-dev liblmdb-dev lmdb-utils \
libjansson-dev libisal-dev libcurl4-openssl-dev libssl-dev libcrypt-dev \
openssl python3 isync valgrind radosgw ceph-mon ceph-osd ceph-common"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	if [ "$(id -u)" != 0 ]; then
		echo "deps: not root; install these packages:$missing" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
