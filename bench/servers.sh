# Server helpers shared by bench/run-bench.sh (and usable by hand):
#   . bench/servers.sh; WORK=$(mktemp -d); USERS=100; start_dovecot
#   ... PORT is set ...; stop_server
# Each start_* function starts one server on 127.0.0.1 with users
# u1..u$USERS (password pw<user>) below $WORK, and sets PORT and either
# SERVER_PID or STOP_CMD for stop_server. Needs: WORK, USERS; run from the
# repository root.
SERVER_PID=${SERVER_PID:-}
STOP_CMD=${STOP_CMD:-}
ALIVE_CMD=${ALIVE_CMD:-}
SERVER_LOG=${SERVER_LOG:-}	# files worth reading after a crash

log() { echo "bench: $*" >&2; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
	i=0
	while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1).close()" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			log "server on port $1 did not come up"
			return 1
		fi
		sleep 0.1
	done
}

# True while the server started last is running.
server_alive() {
	if [ -n "$SERVER_PID" ]; then
		kill -0 "$SERVER_PID" 2>/dev/null
		return
	fi
	if [ -n "${ALIVE_CMD:-}" ]; then
		sh -c "$ALIVE_CMD"
		return
	fi
	return 1
}

stop_server() {
	if [ -n "$STOP_CMD" ]; then
		sh -c "$STOP_CMD" || true
		STOP_CMD=""
		ALIVE_CMD=""
	fi
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}

# users u1..uN with password pw<user>, in the {SCHEME}secret format that
# both kura and Dovecot's passwd-file read.
make_users() {
	i=1
	: > "$1"
	while [ $i -le "$USERS" ]; do
		echo "u$i:{PLAIN}pwu$i" >> "$1"
		i=$((i + 1))
	done
	chmod 0600 "$1"
}

# ---- servers: each sets PORT, SERVER_LOG and SERVER_PID (or STOP_CMD
# and ALIVE_CMD) ----

start_kura() {
	d=$WORK/kura
	mkdir -p "$d"
	make_users "$d/users"
	PORT=$(free_port)
	workers=""
	[ -n "${KURA_WORKERS:-}" ] && workers="--workers $KURA_WORKERS"
	# shellcheck disable=SC2086
	"${KURA_IMAPD:-build/kura-imapd}" --listen "127.0.0.1:$PORT" --store "fs:$d/store" \
		--cache "$d/cache" --users "$d/users" --plaintext-auth loopback \
		--max-connections-per-ip 0 --log-level warn --log-file "$d/kura.log" \
		$workers >> "$d/stderr" 2>&1 &
	SERVER_PID=$!
	SERVER_LOG="$d/stderr $d/kura.log"
	wait_port "$PORT"
}

start_kura_s3() {
	# TODO(lead): the S3 (Ceph RGW) row. Start RGW with
	# tests/s3/start-rgw.sh, create the bucket, then start kura-imapd as
	# in start_kura but with --store "s3:..." (see docs/config.md), set
	# PORT, SERVER_LOG and SERVER_PID, and
	# STOP_CMD="sh tests/s3/stop-rgw.sh ..." for the RGW side.
	log "kura-s3: not wired yet (TODO in bench/run-bench.sh)"
	return 1
}

start_dovecot() {
	if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
		log "installing dovecot-imapd"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends dovecot-imapd >/dev/null
	fi
	DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
	d=$WORK/dovecot
	mkdir -p "$d/run" "$d/state" "$d/home"
	make_users "$d/users"
	# mail processes run as the dovecot user: it owns the homes
	uid=$(id -u dovecot)
	gid=$(id -g dovecot)
	chown "$uid:$gid" "$d/home"
	# the auth process runs as the dovecot user too
	chown "$uid:$gid" "$d/users"
	# shellcheck disable=SC3045
	ulimit -n 65536 2>/dev/null || true
	chmod 0755 "$d"
	PORT=$(free_port)
	cat > "$d/dovecot.conf" <<EOF
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = $uid
mail_location = maildir:~/Maildir
mail_max_userip_connections = 20000
default_process_limit = 1000
default_client_limit = 20000
default_vsz_limit = 0
shutdown_clients = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/users
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$d/home/%u
}
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
  # one login process serves many connections (no per-login fork)
  service_count = 0
  process_min_avail = 2
}
service imap {
  process_limit = 20000
  client_limit = 1
}
EOF
	"$DOVECOT" -c "$d/dovecot.conf"
	STOP_CMD="kill \$(cat '$d/run/master.pid') 2>/dev/null; sleep 1"
	ALIVE_CMD="kill -0 \$(cat '$d/run/master.pid') 2>/dev/null"
	SERVER_LOG="$d/dovecot.log"
	wait_port "$PORT"
}

