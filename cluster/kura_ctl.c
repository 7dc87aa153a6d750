/* kura-ctl: the administration tool. Exit status: 0 success, 1 failure,
 * 2 usage error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "imapd/config.h"
#include "imapd/users.h"
#include "lib/errors.h"
#include "lib/util.h"

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
		"  help\n"
		"      Prints this text.\n"
		"\n"
		"FILE defaults to %s. The file is rewritten atomically\n"
		"(temporary file + rename); other lines and comments are kept.\n"
		"A running kura-imapd picks changes up by itself.\n",
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
	fprintf(stderr, "kura-ctl: unknown command '%s' (see kura-ctl help)\n",
		cmd);
	return EXIT_USAGE;
}
