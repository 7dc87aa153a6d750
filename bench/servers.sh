# Server helpers shared by bench/run-bench.sh (and usable by hand):
#   . bench/servers.sh; WORK=$(mktemp -d); USERS=100; start_dovecot
#   ... PORT is set ...; stop_server
# Each start_* function starts one server on 127.0.0.1 with users
# u1..u$USERS (password pw<user>) and the user `cold` (password pwcold,
# for the cold-cache measurement) below $WORK, and sets PORT,
# SERVER_ROOT_PID (the process whose tree is the server, for memory
# figures) and either SERVER_PID or STOP_CMD for stop_server. Calling a
# start_* function again after stop_server reuses the data below $WORK.
# Needs: WORK, USERS; run from the repository root.
#
# kura-s3 needs an S3 endpoint: s3_setup starts a private Ceph RGW
# (tests/s3/start-rgw.sh in $WORK/rgw, on free ports), or, when
# KURA_BENCH_S3_URL (s3:http[s]://HOST[:PORT]/BUCKET) is set, uses that
# with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally AWS_REGION,
# AWS_SESSION_TOKEN, KURA_S3_ADDRESSING, KURA_S3_CA_FILE from the
# environment. s3_teardown stops the private RGW.
SERVER_PID=${SERVER_PID:-}
STOP_CMD=${STOP_CMD:-}
ALIVE_CMD=${ALIVE_CMD:-}
SERVER_LOG=${SERVER_LOG:-}	# files worth reading after a crash
SERVER_ROOT_PID=${SERVER_ROOT_PID:-}
SERVER_CACHE=${SERVER_CACHE:-}	# kura: its cache directory
S3_STORE_URL=${S3_STORE_URL:-}	# s3:... once s3_setup succeeded
S3_KIND=${S3_KIND:-}		# rgw or external
RGW_DIR=${RGW_DIR:-}

log() { echo "bench: $*" >&2; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 30 s until 127.0.0.1:PORT accepts; fails at once when the
# server process PID (optional) has exited.
wait_port() { # PORT [PID]
	end=$(($(date +%s) + 30))
	while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1).close()" 2>/dev/null; do
		if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
			log "the server (pid $2) exited before listening on port $1"
			return 1
		fi
		if [ "$(date +%s)" -ge "$end" ]; then
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
	SERVER_ROOT_PID=""
}

# users u1..uN with password pw<user>, in the {SCHEME}secret format that
# both kura and Dovecot's passwd-file read, and `cold`.
make_users() {
	i=1
	: > "$1"
	while [ $i -le "$USERS" ]; do
		echo "u$i:{PLAIN}pwu$i" >> "$1"
		i=$((i + 1))
	done
	echo "cold:{PLAIN}pwcold" >> "$1"
	chmod 0600 "$1"
}

# ---- servers: each sets PORT, SERVER_LOG, SERVER_ROOT_PID and
# SERVER_PID (or STOP_CMD and ALIVE_CMD) ----

# kura-imapd with its cache in $WORK/NAME: start_kura_on NAME STORE-URI
start_kura_on() {
	d=$WORK/$1
	mkdir -p "$d"
	make_users "$d/users"
	PORT=$(free_port)
	workers=""
	[ -n "${KURA_WORKERS:-}" ] && workers="--workers $KURA_WORKERS"
	# shellcheck disable=SC3045
	ulimit -n 65536 2>/dev/null || true
	# shellcheck disable=SC2086
	"${KURA_IMAPD:-build/kura-imapd}" --listen "127.0.0.1:$PORT" --store "$2" \
		--cache "$d/cache" --users "$d/users" --plaintext-auth loopback \
		--max-connections-per-ip 0 --log-level warn --log-file "$d/kura.log" \
		$workers >> "$d/stderr" 2>&1 &
	SERVER_PID=$!
	SERVER_ROOT_PID=$SERVER_PID
	SERVER_CACHE=$d/cache
	SERVER_LOG="$d/stderr $d/kura.log"
	wait_port "$PORT" "$SERVER_PID"
}

start_kura() {
	start_kura_on kura "fs:$WORK/kura/store"
}

start_kura_s3() {
	s3_setup || return 1
	start_kura_on kura-s3 "$S3_STORE_URL"
}

# ---- the S3 endpoint of kura-s3 ----

# A base port B with B..B+40 free on 127.0.0.1 (the RGW's mon and OSD),
# below the kernel's ephemeral port range.
free_port_range() {
	python3 -c '
import random, socket
for _ in range(200):
    base = random.randrange(20000, 32000)
    socks = []
    try:
        for p in range(base, base + 41):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
'
}

# Sets S3_STORE_URL and S3_KIND and, for the private RGW, RGW_DIR and the
# exported AWS_* variables. Does nothing the second time.
s3_setup() {
	[ -n "$S3_STORE_URL" ] && return 0
	if [ -n "${KURA_BENCH_S3_URL:-}" ]; then
		if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
			log "KURA_BENCH_S3_URL needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
			return 1
		fi
		export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
		S3_STORE_URL=$KURA_BENCH_S3_URL
		S3_KIND=external
		return 0
	fi
	RGW_DIR=$WORK/rgw
	mkdir -p "$RGW_DIR"
	rgw_port=$(free_port)
	mon_port=$(free_port_range)
	if [ -z "$mon_port" ]; then
		log "found no 41 free ports for the RGW's mon and OSD"
		return 1
	fi
	log "starting Ceph RGW on 127.0.0.1:$rgw_port (mon $mon_port) in $RGW_DIR"
	if ! KURA_RGW_PORT=$rgw_port KURA_MON_PORT=$mon_port KURA_RGW_BUCKET=kura-bench \
		sh tests/s3/start-rgw.sh "$RGW_DIR" > "$RGW_DIR/start.out" 2> "$RGW_DIR/start.err"; then
		log "tests/s3/start-rgw.sh failed:"
		tail -n 5 "$RGW_DIR/start.err" >&2
		return 1
	fi
	# shellcheck disable=SC1091
	. "$RGW_DIR/env"
	S3_STORE_URL=$KURA_S3_URL
	S3_KIND=rgw
}

s3_teardown() {
	if [ -n "$RGW_DIR" ] && [ -f "$RGW_DIR/pids" ]; then
		sh tests/s3/stop-rgw.sh "$RGW_DIR" >&2 || true
	fi
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
	"$DOVECOT" -c "$d/dovecot.conf" || return 1
	# SIGTERM to the master; it and its children (shutdown_clients)
	# exit within a few seconds, which a restart on the same base_dir
	# must wait for
	STOP_CMD="p=\$(cat '$d/run/master.pid' 2>/dev/null) && kill \$p 2>/dev/null; i=0; while [ -n \"\$p\" ] && kill -0 \$p 2>/dev/null && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done"
	ALIVE_CMD="kill -0 \$(cat '$d/run/master.pid') 2>/dev/null"
	SERVER_LOG="$d/dovecot.log"
	DOVECOT_HOME=$d/home
	wait_port "$PORT" || return 1
	SERVER_ROOT_PID=$(cat "$d/run/master.pid")
}

# Dovecot's counterpart of deleting kura's cache: the index files of the
# user's INBOX (dovecot-uidlist, which assigns the UIDs, stays).
dovecot_drop_index() { # user
	for f in dovecot.index dovecot.index.log dovecot.index.log.2 \
		dovecot.index.cache dovecot.list.index dovecot.list.index.log; do
		rm -f "$DOVECOT_HOME/$1/Maildir/$f"
	done
}

