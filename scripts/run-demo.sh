#!/bin/sh
# make run: starts kura-imapd on the embedded fs backend in ./kura-data
# with a demo user, in the foreground (Ctrl-C stops it).
set -e
cd "$(dirname "$0")/.."
DATA=${KURA_DATA:-./kura-data}
PORT=${KURA_PORT:-1143}
TLSPORT=${KURA_TLS_PORT:-1993}
mkdir -p "$DATA"
sh scripts/make-cert.sh "$DATA/tls" >/dev/null
if [ ! -f "$DATA/users" ] || ! grep -q '^demo:' "$DATA/users"; then
	printf 'demo\n' | build/kura-ctl user-add --users "$DATA/users" --scheme yescrypt demo
fi
cat <<MSG

kura-imapd is starting on the fs backend in $DATA/store.

  plain IMAP (STARTTLS; plaintext login allowed from 127.0.0.1):
      127.0.0.1:$PORT
  implicit TLS (self-signed certificate $DATA/tls/cert.pem):
      127.0.0.1:$TLSPORT
  user: demo   password: demo

  try:  python3 -c "import imaplib; m=imaplib.IMAP4('127.0.0.1',$PORT); print(m.login('demo','demo')); print(m.list())"
  or:   openssl s_client -connect 127.0.0.1:$TLSPORT -quiet   then   a LOGIN demo demo

Ctrl-C stops the server.

MSG
exec build/kura-imapd --listen 127.0.0.1:$PORT --tls-listen 127.0.0.1:$TLSPORT \
	--tls-cert "$DATA/tls/cert.pem" --tls-key "$DATA/tls/key.pem" \
	--store "fs:$DATA/store" --cache "$DATA/cache" --users "$DATA/users" \
	--plaintext-auth loopback
