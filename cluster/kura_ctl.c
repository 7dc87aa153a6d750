/* kura-ctl: the administration tool. Exit status: 0 success, 1 failure,
 * 2 usage error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "imapd/config.h"
#include "imapd/users.h"
#include "index/index.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/store.h"

#define EXIT_USAGE 2

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: kura-ctl COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  user-add [--users FILE] [--scheme yescrypt|sha512-crypt|plain]\n"
		"           [--quota SIZE] NAME\n"
		"      Adds NAME or replaces its password (its quota is kept unless\n"
		"      --quota is given; 0 = none). The password is read from\n"
		"      standard input (one line), or asked for twice without echo\n"
		"      when standard input is a terminal. Default scheme: yescrypt.\n"
		"  user-del [--users FILE] NAME\n"
		"      Removes NAME.\n"
		"  user-list [--users FILE]\n"
		"      Lists users: name, scheme, quota (never the secrets).\n"
		"  sweep --store SPEC (--user NAME | --all) [--retention DAYS]\n"
		"        [--dry-run]\n"
		"      Deletes what the store keeps only for safety: expunged\n"
		"      messages older than DAYS (default 7), message objects no\n"
		"      entry references (after a day), log entries covered by a\n"
		"      snapshot and old snapshots (after an hour). Prints what it\n"
		"      deleted per user. Safe while servers run.\n"
		"  expunged --store SPEC --user NAME [--retention DAYS]\n"
		"      Lists the user's expunged messages still kept: guid, time\n"
		"      of the expunge (UTC), mailbox, UID, size, subject.\n"
		"  restore --store SPEC --user NAME --guid HEX [--mailbox NAME]\n"
		"      Puts an expunged message back as a new message, into the\n"
		"      mailbox it came from (recreated if deleted) or into NAME.\n"
		"  help\n"
		"      Prints this text.\n"
		"\n"
		"FILE defaults to %s. The file is rewritten atomically\n"
		"(temporary file + rename); other lines and comments are kept.\n"
		"A running kura-imapd picks changes up by itself.\n"
		"SPEC is the object store, as in the server's configuration:\n"
		"fs:DIR or s3:http(s)://HOST:PORT/BUCKET (keys from the\n"
		"environment, see docs/s3.md). The store commands work on\n"
		"the store directly, as one more node: no server is needed.\n",
		KURA_DEFAULT_USERS);
}

struct options {
	const char *users;
	const char *scheme;
	const char *quota;
	const char *name;
};

/* Parses [--users F] [--scheme S] [--quota Q] NAME? in any order.
 * allowed: which options the command takes ("usq"). */
static int parse_options(int argc, char **argv, const char *allowed,
			 bool want_name, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->users = KURA_DEFAULT_USERS;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
			if (strcmp(arg, "--") == 0) {
				if (++i >= argc)
					break;
				arg = argv[i];
			}
			if (!want_name || o->name != NULL) {
				fprintf(stderr, "kura-ctl: unexpected argument '%s'\n",
					arg);
				return -EINVAL;
			}
			o->name = arg;
			continue;
		}
		static const struct { const char *name; char letter; } opts[] = {
			{ "users", 'u' }, { "scheme", 's' }, { "quota", 'q' },
		};
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		char letter = 0;
		for (size_t k = 0; k < ARRAY_SIZE(opts); k++) {
			if (strlen(opts[k].name) == nlen &&
			    memcmp(opts[k].name, name, nlen) == 0)
				letter = opts[k].letter;
		}
		if (letter == 0 || strchr(allowed, letter) == NULL) {
			fprintf(stderr, "kura-ctl: unknown option '%.*s'\n",
				(int)(nlen + 2), arg);
			return -EINVAL;
		}
		const char *value = eq != NULL ? eq + 1 : NULL;
		if (value == NULL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "kura-ctl: %s needs a value\n", arg);
				return -EINVAL;
			}
			value = argv[++i];
		}
		if (value[0] == '\0') {
			fprintf(stderr, "kura-ctl: --%.*s needs a value\n",
				(int)nlen, name);
			return -EINVAL;
		}
		if (letter == 'u')
			o->users = value;
		else if (letter == 's')
			o->scheme = value;
		else
			o->quota = value;
	}
	if (want_name && o->name == NULL) {
		fprintf(stderr, "kura-ctl: missing user NAME\n");
		return -EINVAL;
	}
	if (o->name != NULL && !users_name_is_valid(kstr_cstr(o->name))) {
		fprintf(stderr, "kura-ctl: bad user name '%s' (1-255 printable "
			"ASCII characters, no ':', '/' or space, not . or ..)\n",
			o->name);
		return -EINVAL;
	}
	return 0;
}

static struct termios saved_tty;
static volatile sig_atomic_t tty_modified;

static void restore_tty(void)
{
	if (tty_modified) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_modified = 0;
	}
}

static void on_signal(int sig)
{
	restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line of at most USERS_PASSWORD_MAX bytes from stdin into
 * buf, without the line end. Returns 0, or -1 after printing why. */
static int read_line(char *buf, size_t size)
{
	size_t len = 0;
	int c;
	while ((c = getchar()) != EOF && c != '\n') {
		if (len + 1 >= size) {
			fprintf(stderr, "\nkura-ctl: password longer than %d bytes\n",
				USERS_PASSWORD_MAX);
			return -1;
		}
		buf[len++] = (char)c;
	}
	if (c == EOF && len == 0) {
		fprintf(stderr, "kura-ctl: no password on standard input\n");
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return 0;
}

static int prompt(const char *text, char *buf, size_t size)
{
	fputs(text, stderr);
	fflush(stderr);
	struct termios t = saved_tty;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;
	tty_modified = 1;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
	int r = read_line(buf, size);
	restore_tty();
	return r;
}

static int read_password(char *buf, size_t size)
{
	if (!isatty(STDIN_FILENO))
		return read_line(buf, size);
	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0) {
		perror("kura-ctl: tcgetattr");
		return -1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	char *again = xmalloc(size);
	int r = prompt("Password: ", buf, size);
	if (r == 0)
		r = prompt("Retype password: ", again, size);
	if (r == 0 && strcmp(buf, again) != 0) {
		fprintf(stderr, "kura-ctl: the passwords differ\n");
		r = -1;
	}
	explicit_bzero(again, size);
	free(again);
	return r;
}

static int cmd_user_add(int argc, char **argv)
{
	struct options o;
	if (parse_options(argc, argv, "usq", true, &o) < 0)
		return EXIT_USAGE;
	enum users_scheme scheme = USERS_SCHEME_YESCRYPT;
	if (o.scheme != NULL) {
		if (users_scheme_parse(o.scheme, &scheme) < 0 ||
		    scheme == USERS_SCHEME_CRYPT) {
			fprintf(stderr, "kura-ctl: unknown scheme '%s' "
				"(yescrypt, sha512-crypt or plain)\n", o.scheme);
			return EXIT_USAGE;
		}
	}
	uint64_t quota = 0;
	if (o.quota != NULL && config_parse_size(o.quota, &quota) < 0) {
		fprintf(stderr, "kura-ctl: bad quota '%s' (bytes, K/M/G/T "
			"suffix allowed)\n", o.quota);
		return EXIT_USAGE;
	}

	char pw[USERS_PASSWORD_MAX + 2];
	if (read_password(pw, sizeof(pw)) < 0)
		return EXIT_FAILURE;
	const char *error;
	char *entry = users_hash_password(scheme, pw, &error);
	explicit_bzero(pw, sizeof(pw));
	if (entry == NULL) {
		fprintf(stderr, "kura-ctl: %s\n", error);
		return EXIT_FAILURE;
	}
	int r = users_file_put(o.users, o.name, entry, o.quota != NULL, quota,
			       &error);
	explicit_bzero(entry, strlen(entry));
	free(entry);
	if (r < 0) {
		fprintf(stderr, "kura-ctl: %s\n", error);
		return EXIT_FAILURE;
	}
	fprintf(stderr, "kura-ctl: user '%s' saved in %s\n", o.name, o.users);
	return EXIT_SUCCESS;
}

static int cmd_user_del(int argc, char **argv)
{
	struct options o;
	if (parse_options(argc, argv, "u", true, &o) < 0)
		return EXIT_USAGE;
	const char *error;
	if (users_file_delete(o.users, o.name, &error) < 0) {
		fprintf(stderr, "kura-ctl: %s\n", error);
		return EXIT_FAILURE;
	}
	fprintf(stderr, "kura-ctl: user '%s' removed from %s\n", o.name,
		o.users);
	return EXIT_SUCCESS;
}

static int print_user(const char *name, const struct user_info *info,
		      void *ctx)
{
	(void)ctx;
	if (info->quota != 0)
		printf("%s %s quota=%llu\n", name,
		       users_scheme_name(info->scheme),
		       (unsigned long long)info->quota);
	else
		printf("%s %s\n", name, users_scheme_name(info->scheme));
	return 0;
}

static int cmd_user_list(int argc, char **argv)
{
	struct options o;
	if (parse_options(argc, argv, "u", false, &o) < 0)
		return EXIT_USAGE;
	struct users *users;
	const char *error;
	if (users_load(o.users, &users, &error) < 0) {
		fprintf(stderr, "kura-ctl: %s\n", error);
		return EXIT_FAILURE;
	}
	users_foreach(users, print_user, NULL);
	users_destroy(&users);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("kura-ctl: stdout");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* ---- store commands: sweep, expunged, restore ---- */

struct store_options {
	const char *store;
	const char *user;
	const char *guid;
	const char *mailbox;
	const char *retention;
	bool all;
	bool dry_run;
};

/* Parses the options of a store command. allowed: which the command
 * takes (s store, u user, a all, r retention, g guid, m mailbox, d
 * dry-run). */
static int parse_store_options(int argc, char **argv, const char *allowed,
			       struct store_options *o)
{
	static const struct { const char *name; char letter; bool flag; } opts[] = {
		{ "store", 's', false }, { "user", 'u', false },
		{ "all", 'a', true }, { "retention", 'r', false },
		{ "guid", 'g', false }, { "mailbox", 'm', false },
		{ "dry-run", 'd', true },
	};
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "kura-ctl: unexpected argument '%s'\n",
				arg);
			return -EINVAL;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		size_t k;
		for (k = 0; k < ARRAY_SIZE(opts); k++) {
			if (strlen(opts[k].name) == nlen &&
			    memcmp(opts[k].name, name, nlen) == 0)
				break;
		}
		if (k == ARRAY_SIZE(opts) ||
		    strchr(allowed, opts[k].letter) == NULL) {
			fprintf(stderr, "kura-ctl: unknown option '%.*s'\n",
				(int)(nlen + 2), arg);
			return -EINVAL;
		}
		if (opts[k].flag) {
			if (eq != NULL) {
				fprintf(stderr, "kura-ctl: --%s takes no value\n",
					opts[k].name);
				return -EINVAL;
			}
			if (opts[k].letter == 'a')
				o->all = true;
			else
				o->dry_run = true;
			continue;
		}
		const char *value = eq != NULL ? eq + 1 : NULL;
		if (value == NULL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "kura-ctl: %s needs a value\n", arg);
				return -EINVAL;
			}
			value = argv[++i];
		}
		if (value[0] == '\0') {
			fprintf(stderr, "kura-ctl: --%s needs a value\n",
				opts[k].name);
			return -EINVAL;
		}
		switch (opts[k].letter) {
		case 's': o->store = value; break;
		case 'u': o->user = value; break;
		case 'r': o->retention = value; break;
		case 'g': o->guid = value; break;
		default: o->mailbox = value; break;
		}
	}
	if (o->store == NULL) {
		fprintf(stderr, "kura-ctl: missing --store SPEC\n");
		return -EINVAL;
	}
	return 0;
}

/* Sweep settings with --retention DAYS applied. */
static int sweep_settings(const struct store_options *o,
			  struct index_sweep_settings *set)
{
	index_sweep_settings_init(set);
	set->dry_run = o->dry_run;
	if (o->retention == NULL)
		return 0;
	uint64_t days;
	if (!kstr_to_u64(kstr_cstr(o->retention), &days) || days > 36500) {
		fprintf(stderr, "kura-ctl: bad --retention '%s' (whole days, "
			"0-36500)\n", o->retention);
		return -EINVAL;
	}
	set->retention_sec = (int64_t)days * 86400;
	return 0;
}

struct store_session {
	struct store *store;
	struct index *idx;
};

static int store_session_open(const char *spec, struct store_session *ss)
{
	const char *error = NULL;
	/* Only problems on stderr: stdout is the command's output. */
	log_set_level(LOG_WARN);
	memset(ss, 0, sizeof(*ss));
	if (store_open(spec, &ss->store, &error) < 0) {
		fprintf(stderr, "kura-ctl: cannot open store '%s': %s\n", spec,
			error != NULL ? error : "");
		return -1;
	}
	struct index_settings iset = { .snapshot_every = 0 };
	ss->idx = index_create(ss->store, NULL, &iset);
	return 0;
}

static void store_session_close(struct store_session *ss)
{
	index_destroy(&ss->idx);
	store_close(&ss->store);
}

static int flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("kura-ctl: stdout");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

static void print_sweep(const char *user, const struct index_sweep_stats *st,
			bool dry_run)
{
	printf("%s%s: expunged-deleted=%llu expunged-kept=%llu "
	       "records-purged=%llu orphans-deleted=%llu bytes-freed=%llu "
	       "log-deleted=%llu snapshots-deleted=%llu (objects=%llu) "
	       "snapshot=%llu\n", dry_run ? "(dry run) " : "", user,
	       (unsigned long long)st->expunged_deleted,
	       (unsigned long long)st->expunged_kept,
	       (unsigned long long)st->records_purged,
	       (unsigned long long)st->orphans_deleted,
	       (unsigned long long)st->bytes_freed,
	       (unsigned long long)st->log_deleted,
	       (unsigned long long)st->snapshots_deleted,
	       (unsigned long long)st->snap_objects_deleted,
	       (unsigned long long)st->snapshot_seq);
}

static int cmd_sweep(int argc, char **argv)
{
	struct store_options o;
	struct index_sweep_settings set;
	if (parse_store_options(argc, argv, "suard", &o) < 0 ||
	    sweep_settings(&o, &set) < 0)
		return EXIT_USAGE;
	if ((o.user == NULL) == !o.all) {
		fprintf(stderr, "kura-ctl: sweep needs --user NAME or --all\n");
		return EXIT_USAGE;
	}
	struct store_session ss;
	if (store_session_open(o.store, &ss) < 0)
		return EXIT_FAILURE;
	const char *error = NULL;
	char **users = NULL;
	size_t n = 0;
	int status = EXIT_SUCCESS;
	if (o.all) {
		if (index_users_list(ss.idx, &users, &n, &error) < 0) {
			fprintf(stderr, "kura-ctl: cannot list users: %s\n",
				error != NULL ? error : "");
			store_session_close(&ss);
			return EXIT_FAILURE;
		}
	} else {
		users = xmalloc(sizeof(*users));
		users[0] = xstrdup(o.user);
		n = 1;
	}
	struct index_sweep_stats total;
	memset(&total, 0, sizeof(total));
	for (size_t i = 0; i < n; i++) {
		struct index_sweep_stats st;
		/* A fresh index per user: accounts do not pile up in its
		 * LRU over a long --all run. */
		struct index_settings iset = { .snapshot_every = 0 };
		index_destroy(&ss.idx);
		ss.idx = index_create(ss.store, NULL, &iset);
		int r = index_sweep_user(ss.idx, users[i], &set, &st, &error);
		if (r < 0) {
			fprintf(stderr, "kura-ctl: sweep %s: %s\n", users[i],
				error != NULL ? error : kura_strerror(r));
			status = EXIT_FAILURE;
			continue;
		}
		print_sweep(users[i], &st, o.dry_run);
		total.expunged_deleted += st.expunged_deleted;
		total.expunged_kept += st.expunged_kept;
		total.records_purged += st.records_purged;
		total.orphans_deleted += st.orphans_deleted;
		total.bytes_freed += st.bytes_freed;
		total.log_deleted += st.log_deleted;
		total.snapshots_deleted += st.snapshots_deleted;
		total.snap_objects_deleted += st.snap_objects_deleted;
	}
	if (o.all)
		print_sweep("total", &total, o.dry_run);
	index_users_free(users, n);
	store_session_close(&ss);
	if (flush_stdout() != EXIT_SUCCESS)
		return EXIT_FAILURE;
	return status;
}

/* Prints bytes from the store for a terminal: control bytes as '?'. */
static void print_safe(const char *s)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int cmd_expunged(int argc, char **argv)
{
	struct store_options o;
	struct index_sweep_settings set;
	if (parse_store_options(argc, argv, "sur", &o) < 0 ||
	    sweep_settings(&o, &set) < 0)
		return EXIT_USAGE;
	if (o.user == NULL) {
		fprintf(stderr, "kura-ctl: expunged needs --user NAME\n");
		return EXIT_USAGE;
	}
	struct store_session ss;
	if (store_session_open(o.store, &ss) < 0)
		return EXIT_FAILURE;
	struct index_expunged_msg *v = NULL;
	size_t n = 0;
	const char *error = NULL;
	int r = index_expunged_list(ss.idx, o.user, &set, &v, &n, &error);
	if (r < 0) {
		fprintf(stderr, "kura-ctl: %s\n",
			error != NULL ? error : kura_strerror(r));
		store_session_close(&ss);
		return EXIT_FAILURE;
	}
	printf("GUID\tEXPUNGED\tMAILBOX\tUID\tSIZE\tSUBJECT\n");
	for (size_t i = 0; i < n; i++) {
		char hex[INDEX_GUID_LEN * 2 + 1], when[32];
		struct tm tm;
		time_t t = (time_t)v[i].expunged;
		hex_encode(v[i].guid, INDEX_GUID_LEN, hex);
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			snprintf(when, sizeof(when), "%lld",
				 (long long)v[i].expunged);
		printf("%s\t%s\t", hex, when);
		print_safe(v[i].mailbox);
		printf("\t%u\t%llu\t", v[i].uid,
		       (unsigned long long)v[i].size);
		print_safe(v[i].subject != NULL ? v[i].subject : "");
		putchar('\n');
	}
	index_expunged_list_free(v, n);
	store_session_close(&ss);
	return flush_stdout();
}

static int cmd_restore(int argc, char **argv)
{
	struct store_options o;
	if (parse_store_options(argc, argv, "sugm", &o) < 0)
		return EXIT_USAGE;
	uint8_t guid[INDEX_GUID_LEN];
	if (o.user == NULL || o.guid == NULL) {
		fprintf(stderr, "kura-ctl: restore needs --user NAME and "
			"--guid HEX\n");
		return EXIT_USAGE;
	}
	if (!hex_decode(o.guid, strlen(o.guid), guid, sizeof(guid))) {
		fprintf(stderr, "kura-ctl: bad --guid '%s' (32 hex digits, as "
			"kura-ctl expunged prints)\n", o.guid);
		return EXIT_USAGE;
	}
	struct store_session ss;
	if (store_session_open(o.store, &ss) < 0)
		return EXIT_FAILURE;
	const char *error = NULL;
	uint32_t uidv = 0, uid = 0;
	int r = index_expunged_restore(ss.idx, o.user, guid, o.mailbox, &uidv,
				       &uid, &error);
	if (r < 0) {
		fprintf(stderr, "kura-ctl: restore: %s\n",
			error != NULL ? error : kura_strerror(r));
		store_session_close(&ss);
		return EXIT_FAILURE;
	}
	printf("restored %s as UID %u (UIDVALIDITY %u)%s%s\n", o.guid, uid,
	       uidv, o.mailbox != NULL ? " in " : "",
	       o.mailbox != NULL ? o.mailbox : "");
	store_session_close(&ss);
	return flush_stdout();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("kura-ctl %s\n", KURA_VERSION);
		return EXIT_SUCCESS;
	}
	if (strcmp(cmd, "user-add") == 0)
		return cmd_user_add(argc - 2, argv + 2);
	if (strcmp(cmd, "user-del") == 0)
		return cmd_user_del(argc - 2, argv + 2);
	if (strcmp(cmd, "user-list") == 0)
		return cmd_user_list(argc - 2, argv + 2);
	if (strcmp(cmd, "sweep") == 0)
		return cmd_sweep(argc - 2, argv + 2);
	if (strcmp(cmd, "expunged") == 0)
		return cmd_expunged(argc - 2, argv + 2);
	if (strcmp(cmd, "restore") == 0)
		return cmd_restore(argc - 2, argv + 2);
	fprintf(stderr, "kura-ctl: unknown command '%s' (see kura-ctl help)\n",
		cmd);
	return EXIT_USAGE;
}
