#!/bin/sh
# make-cert.sh OUTDIR: creates OUTDIR/cert.pem and OUTDIR/key.pem, a
# self-signed EC P-256 certificate for CN=localhost (SAN localhost,
# 127.0.0.1, ::1) valid for 10 years, unless both files already exist.
# For tests and demos only.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
cert=$out/cert.pem
key=$out/key.pem
if [ -s "$cert" ] && [ -s "$key" ]; then
	exit 0
fi
command -v openssl >/dev/null 2>&1 || {
	echo "make-cert.sh: the openssl program is missing (apt-get install openssl)" >&2
	exit 1
}
mkdir -p "$out"
tmp=$(mktemp -d "$out/.make-cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
umask 077
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-sha256 -days 3650 -subj "/CN=localhost" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
	-addext "basicConstraints=critical,CA:FALSE" \
	-addext "keyUsage=critical,digitalSignature" \
	-addext "extendedKeyUsage=serverAuth" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/log" || {
	cat "$tmp/log" >&2
	exit 1
}
chmod 600 "$tmp/key.pem"
chmod 644 "$tmp/cert.pem"
mv "$tmp/key.pem" "$key"
mv "$tmp/cert.pem" "$cert"
