#!/bin/sh
# Runs test.js (imapflow, the Node.js IMAP client) against a private
# kura-imapd: installs imapflow into tests/imapflow/node_modules when it is
# missing (npm install --no-audit --no-fund), starts build/kura-imapd (or
# $KURA_BIN) on free loopback ports with a fresh store and a users file,
# runs the scenario, stops the server.  The last line is
# "imapflow: N passed, M failed"; exit status 1 when anything failed.
# The work directory (store, kura.log) is kept on failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${KURA_BIN:-$repo/build/kura-imapd}
case "$bin" in /*) ;; *) bin=$repo/$bin ;; esac

command -v node >/dev/null 2>&1 || { echo "imapflow: node is missing (apt-get install nodejs npm)"; echo "imapflow: 0 passed, 1 failed"; exit 1; }
[ -x "$bin" ] || { echo "imapflow: $bin does not exist (build it first)"; echo "imapflow: 0 passed, 1 failed"; exit 1; }
if [ ! -d "$here/node_modules/imapflow" ]; then
	(cd "$here" && npm install --no-audit --no-fund >/dev/null) || {
		echo "imapflow: npm install failed"; echo "imapflow: 0 passed, 1 failed"; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kura-imapflow.XXXXXX")
freeport() {
	node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
port=$(freeport)
tls_port=$(freeport)
while [ "$tls_port" = "$port" ]; do tls_port=$(freeport); done
printf 'flow:{PLAIN}flowpw\n' >"$work/users"
chmod 600 "$work/users"
sh "$repo/scripts/make-cert.sh" "$work/tls" >/dev/null 2>&1 || true
tls_args=""
if [ -s "$work/tls/cert.pem" ]; then
	tls_args="--tls-listen 127.0.0.1:$tls_port --tls-cert $work/tls/cert.pem --tls-key $work/tls/key.pem"
else
	tls_port=""
fi

# shellcheck disable=SC2086
"$bin" --listen "127.0.0.1:$port" $tls_args --store "fs:$work/store" --cache "$work/cache" \
	--users "$work/users" --plaintext-auth loopback --workers 2 \
	--log-file "$work/kura.log" --log-level info >"$work/stderr.log" 2>&1 &
pid=$!
stop() {
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid"
		return $?
	fi
	wait "$pid" 2>/dev/null
	return 99
}
trap 'kill -KILL "$pid" 2>/dev/null; exit 130' INT TERM

up=0
i=0
while [ $i -lt 100 ]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		break
	fi
	if node -e '
		const s = require("net").connect(Number(process.argv[1]), "127.0.0.1");
		s.setTimeout(1000, () => process.exit(1));
		s.on("error", () => process.exit(1));
		s.once("data", d => process.exit(d.toString().startsWith("* OK") ? 0 : 1));
	' "$port"; then
		up=1
		break
	fi
	sleep 0.1
	i=$((i + 1))
done
if [ $up -ne 1 ]; then
	echo "imapflow: kura-imapd did not start: $(tail -5 "$work/stderr.log" "$work/kura.log" 2>/dev/null)"
	stop
	echo "imapflow: 0 passed, 1 failed"
	echo "# work directory kept: $work" >&2
	exit 1
fi

IMAP_HOST=127.0.0.1 IMAP_PORT=$port IMAP_TLS_PORT=$tls_port IMAP_USER=flow IMAP_PASS=flowpw \
	node "$here/test.js" >"$work/test.out" 2>&1
status=$?
stop
rc=$?
# Everything but the summary line, then extra failures, then the summary.
grep -v '^imapflow: [0-9]* passed, [0-9]* failed$' "$work/test.out"
summary=$(grep '^imapflow: [0-9]* passed, [0-9]* failed$' "$work/test.out" | tail -1)
npass=0
nfail=1
if [ -n "$summary" ]; then
	npass=${summary#imapflow: }; npass=${npass%% passed*}
	nfail=${summary#*passed, }; nfail=${nfail%% failed}
fi
if [ $rc -ne 0 ]; then
	echo "FAIL kura-imapd exited with status $rc after SIGTERM: $(tail -3 "$work/stderr.log")"
	nfail=$((nfail + 1))
fi
if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "$work/stderr.log" "$work/kura.log" 2>/dev/null; then
	echo "FAIL sanitizer report in the server's output"
	nfail=$((nfail + 1))
fi
[ "$nfail" -eq 0 ] || status=1
echo "imapflow: $npass passed, $nfail failed"
if [ $status -eq 0 ]; then
	rm -rf "$work"
else
	echo "# work directory kept: $work" >&2
fi
exit $status
