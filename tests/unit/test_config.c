/* Tests imapd/config: file syntax, flags, defaults, validation, errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imapd/config.h"
#include "tests/unit/test.h"

static char dir[] = "/tmp/kura-test-config.XXXXXX";

static const char *write_conf(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *fp = fopen(path, "w");
	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* Runs config_parse on a NULL-terminated list of arguments. */
static int parse(struct kura_config *cfg, const char **error_r, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"kura-imapd";
	va_start(ap, error_r);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL)
		argv[argc++] = (char *)a;
	va_end(ap);
	*error_r = NULL;
	return config_parse(argc, argv, cfg, error_r);
}

static bool contains(const char *s, const char *sub)
{
	return s != NULL && strstr(s, sub) != NULL;
}

/* Expects a parse failure whose message contains want. */
#define CHECK_FAILS(want, ...) do { \
	struct kura_config _c; const char *_e; \
	int _r = parse(&_c, &_e, __VA_ARGS__, NULL); \
	CHECK(_r < 0); \
	if (!contains(_e, want)) \
		fprintf(stderr, "  expected '%s' in '%s'\n", want, _e ? _e : "(null)"); \
	CHECK(contains(_e, want)); \
	config_free(&_c); \
} while (0)

static void test_defaults(void)
{
	struct kura_config cfg;
	const char *error;
	CHECK_EQ_INT(parse(&cfg, &error, "--plaintext-auth", "loopback", NULL), 0);
	CHECK_EQ_INT(cfg.listener_count, 1);
	CHECK_EQ_STR(cfg.listeners[0].host, "127.0.0.1");
	CHECK_EQ_INT(cfg.listeners[0].port, 1143);
	CHECK(!cfg.listeners[0].tls);
	CHECK_EQ_STR(cfg.store, "fs:./kura-data/store");
	CHECK_EQ_STR(cfg.cache, "./kura-data/cache");
	CHECK_EQ_STR(cfg.users, "./kura-data/users");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	CHECK_EQ_INT(cfg.workers, cpus < 1 ? 1 : cpus);
	CHECK_EQ_INT(cfg.plaintext_auth, PLAINTEXT_AUTH_LOOPBACK);
	CHECK_EQ_INT(cfg.max_connections, 20000);
	CHECK_EQ_INT(cfg.max_connections_per_ip, 200);
	CHECK_EQ_INT(cfg.max_auth_failures, 3);
	CHECK_EQ_INT(cfg.idle_keepalive, 120);
	CHECK_EQ_INT(cfg.idle_poll, 5);
	CHECK_EQ_INT(cfg.snapshot_every, 100);
	CHECK_EQ_INT(cfg.max_append_size, 64ULL << 20);
	CHECK_EQ_INT(cfg.log_level, LOG_INFO);
	CHECK(cfg.log_file == NULL);
	CHECK(cfg.pid_file == NULL);
	CHECK(cfg.tls_cert == NULL && cfg.tls_key == NULL);
	CHECK_EQ_INT(cfg.cache_size, 1ULL << 30);
	CHECK_EQ_INT(cfg.session_timeout, 1800);
	CHECK(cfg.config_file == NULL);
	config_free(&cfg);
	CHECK(cfg.listeners == NULL && cfg.store == NULL);

	/* With no TLS at all, 'never' would lock everyone out. */
	CHECK_FAILS("plaintext-auth is 'never'", "--workers", "2");
}

static void test_file(void)
{
	const char *path = write_conf("full.conf",
		"# kura test config\n"
		"\n"
		"listen = 127.0.0.1:2143\n"
		"  listen=[::1]:2143   # loopback v6\n"
		"tls-listen = 0.0.0.0:2993\n"
		"tls-cert = /etc/kura/cert.pem\n"
		"tls-key = \"/etc/kura/key #1.pem\"  # quoted keeps ' #'\n"
		"store = fs:/srv/kura#store\n"
		"cache = /var/cache/kura\n"
		"users = /etc/kura/users\n"
		"workers = 3\n"
		"plaintext-auth = always\n"
		"max-connections = 500\n"
		"max-connections-per-ip = 0\n"
		"max-auth-failures = 5\n"
		"idle-keepalive = 60\n"
		"idle-poll = 2\n"
		"snapshot-every = 50\n"
		"max-append-size = 10M\n"
		"log-level = debug\n"
		"log-file = /var/log/kura.log\n"
		"pid-file = /run/kura.pid\n"
		"cache-size = 2GiB\n"
		"session-timeout = 3600\r\n");
	struct kura_config cfg;
	const char *error;
	int r = parse(&cfg, &error, "--config", path, NULL);
	CHECK_EQ_INT(r, 0);
	if (r != 0) {
		fprintf(stderr, "  error: %s\n", error);
		config_free(&cfg);
		return;
	}
	CHECK_EQ_STR(cfg.config_file, path);
	CHECK_EQ_INT(cfg.listener_count, 3);
	CHECK_EQ_STR(cfg.listeners[0].host, "127.0.0.1");
	CHECK_EQ_INT(cfg.listeners[0].port, 2143);
	CHECK_EQ_STR(cfg.listeners[1].host, "::1");
	CHECK_EQ_INT(cfg.listeners[1].port, 2143);
	CHECK(!cfg.listeners[1].tls);
	CHECK_EQ_STR(cfg.listeners[2].host, "0.0.0.0");
	CHECK_EQ_INT(cfg.listeners[2].port, 2993);
	CHECK(cfg.listeners[2].tls);
	CHECK_EQ_STR(cfg.tls_cert, "/etc/kura/cert.pem");
	CHECK_EQ_STR(cfg.tls_key, "/etc/kura/key #1.pem");
	CHECK_EQ_STR(cfg.store, "fs:/srv/kura#store");
	CHECK_EQ_STR(cfg.cache, "/var/cache/kura");
	CHECK_EQ_STR(cfg.users, "/etc/kura/users");
	CHECK_EQ_INT(cfg.workers, 3);
	CHECK_EQ_INT(cfg.plaintext_auth, PLAINTEXT_AUTH_ALWAYS);
	CHECK_EQ_INT(cfg.max_connections, 500);
	CHECK_EQ_INT(cfg.max_connections_per_ip, 0);
	CHECK_EQ_INT(cfg.max_auth_failures, 5);
	CHECK_EQ_INT(cfg.idle_keepalive, 60);
	CHECK_EQ_INT(cfg.idle_poll, 2);
	CHECK_EQ_INT(cfg.snapshot_every, 50);
	CHECK_EQ_INT(cfg.max_append_size, 10ULL << 20);
	CHECK_EQ_INT(cfg.log_level, LOG_DEBUG);
	CHECK_EQ_STR(cfg.log_file, "/var/log/kura.log");
	CHECK_EQ_STR(cfg.pid_file, "/run/kura.pid");
	CHECK_EQ_INT(cfg.cache_size, 2ULL << 30);
	CHECK_EQ_INT(cfg.session_timeout, 3600);
	config_free(&cfg);

	/* Flags override the file; --listen flags replace the file's listen
	 * list but leave its tls-listen list alone. --key=value works too. */
	r = parse(&cfg, &error, "--workers", "7", "--config", path,
		  "--listen=10.0.0.1:143", "--log-level", "ERROR",
		  "--store", "fs:/other", NULL);
	CHECK_EQ_INT(r, 0);
	if (r == 0) {
		CHECK_EQ_INT(cfg.workers, 7);
		CHECK_EQ_INT(cfg.listener_count, 2);
		CHECK_EQ_STR(cfg.listeners[0].host, "10.0.0.1");
		CHECK_EQ_INT(cfg.listeners[0].port, 143);
		CHECK(!cfg.listeners[0].tls);
		CHECK_EQ_INT(cfg.listeners[1].port, 2993);
		CHECK(cfg.listeners[1].tls);
		CHECK_EQ_INT(cfg.log_level, LOG_ERROR);
		CHECK_EQ_STR(cfg.store, "fs:/other");
		CHECK_EQ_INT(cfg.max_connections, 500);
	}
	config_free(&cfg);

	/* Only tls-listen given: no default plain listener. */
	r = parse(&cfg, &error, "--tls-listen", "127.0.0.1:993", "--tls-cert",
		  "c.pem", "--tls-key", "k.pem", NULL);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(cfg.listener_count, 1);
	if (cfg.listener_count == 1)
		CHECK(cfg.listeners[0].tls);
	CHECK_EQ_INT(cfg.plaintext_auth, PLAINTEXT_AUTH_NEVER);
	config_free(&cfg);

	/* The last of repeated flags wins. */
	r = parse(&cfg, &error, "--plaintext-auth", "always", "--workers", "2",
		  "--workers", "4", NULL);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(cfg.workers, 4);
	config_free(&cfg);

	/* An empty file is fine. */
	path = write_conf("empty.conf", "\n# nothing\n   \n");
	r = parse(&cfg, &error, "--config", path, "--plaintext-auth", "always",
		  NULL);
	CHECK_EQ_INT(r, 0);
	config_free(&cfg);
}

static void test_file_errors(void)
{
	char want[512];
	const char *p;

	p = write_conf("e1.conf", "workers = 2\n\nfrobnicate = 1\n");
	snprintf(want, sizeof(want), "%s:3: unknown key 'frobnicate'", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e2.conf", "# c\nworkers 2\n");
	snprintf(want, sizeof(want), "%s:2: expected 'key = value'", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e3.conf", "workers = 2\nworkers = 3\n");
	snprintf(want, sizeof(want),
		 "%s:2: duplicate key 'workers' (first set on line 1)", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e4.conf", "listen = 127.0.0.1:0\n");
	snprintf(want, sizeof(want), "%s:1: listen: port must be", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e5.conf", "\n\nmax-append-size = 12X\n");
	snprintf(want, sizeof(want), "%s:3: max-append-size: expected a size", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e6.conf", "log-level = loud\n");
	snprintf(want, sizeof(want), "%s:1: log-level: expected debug", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e7.conf", "workers =\n");
	snprintf(want, sizeof(want), "%s:1: workers: missing value", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e8.conf", "tls-key = \"unterminated\n");
	snprintf(want, sizeof(want), "%s:1: missing closing", p);
	CHECK_FAILS(want, "--config", p);

	p = write_conf("e9.conf", "idle-poll = 0\n");
	snprintf(want, sizeof(want), "%s:1: idle-poll: must be from 1 to 3600", p);
	CHECK_FAILS(want, "--config", p);

	CHECK_FAILS("cannot open config file", "--config",
		    "/nonexistent/kura.conf");
	struct kura_config cfg;
	const char *error;
	CHECK_EQ_INT(parse(&cfg, &error, "--config", "/nonexistent/x", NULL),
		     -ENOENT);
	config_free(&cfg);
	CHECK_FAILS("--config needs a value", "--config");
}

static void test_flag_errors(void)
{
	CHECK_FAILS("command line: unknown option '--frob'", "--frob", "1");
	CHECK_FAILS("command line: unknown option '--frob'", "--frob=1");
	CHECK_FAILS("unexpected argument 'stray'", "stray");
	CHECK_FAILS("--workers needs a value", "--workers");
	CHECK_FAILS("--workers: expected a number", "--workers", "two");
	CHECK_FAILS("--workers: must be from 1 to 1024", "--workers", "0");
	CHECK_FAILS("--workers: expected a number", "--workers", "-1");
	CHECK_FAILS("--listen: port must be", "--listen", "127.0.0.1:70000");
	CHECK_FAILS("--listen: expected HOST:PORT", "--listen", "localhost");
	CHECK_FAILS("--listen: IPv6 addresses need brackets", "--listen",
		    "::1:143");
	CHECK_FAILS("--listen: expected ':PORT'", "--listen", "[::1]143");
	CHECK_FAILS("--listen: empty host", "--listen", ":143");
	CHECK_FAILS("--plaintext-auth: expected never", "--plaintext-auth",
		    "sometimes");
	CHECK_FAILS("--max-append-size: must be from", "--max-append-size", "10");
	CHECK_FAILS("--cache-size: must be from", "--cache-size",
		    "99999999999999999999");
	CHECK_FAILS("tls-listen needs tls-cert", "--tls-listen", "127.0.0.1:993");
	CHECK_FAILS("tls-cert and tls-key must be set together", "--tls-cert",
		    "c.pem");
	CHECK_FAILS("listed twice", "--plaintext-auth", "always", "--listen",
		    "127.0.0.1:143", "--listen", "127.0.0.1:143");
	CHECK_FAILS("store must look like", "--plaintext-auth", "always",
		    "--store", "/var/lib/kura");
}

static void test_sizes(void)
{
	uint64_t v = 0;
	CHECK_EQ_INT(config_parse_size("10", &v), 0);
	CHECK_EQ_INT(v, 10);
	CHECK_EQ_INT(config_parse_size("64M", &v), 0);
	CHECK_EQ_INT(v, 64ULL << 20);
	CHECK_EQ_INT(config_parse_size("512k", &v), 0);
	CHECK_EQ_INT(v, 512ULL << 10);
	CHECK_EQ_INT(config_parse_size("3GiB", &v), 0);
	CHECK_EQ_INT(v, 3ULL << 30);
	CHECK_EQ_INT(config_parse_size("1TB", &v), 0);
	CHECK_EQ_INT(v, 1ULL << 40);
	CHECK_EQ_INT(config_parse_size("", &v), -EINVAL);
	CHECK_EQ_INT(config_parse_size("M", &v), -EINVAL);
	CHECK_EQ_INT(config_parse_size("1 M", &v), -EINVAL);
	CHECK_EQ_INT(config_parse_size("1MX", &v), -EINVAL);
	CHECK_EQ_INT(config_parse_size("-1", &v), -EINVAL);
	CHECK_EQ_INT(config_parse_size("18446744073709551616", &v), -ERANGE);
	CHECK_EQ_INT(config_parse_size("16777216T", &v), -ERANGE);
	CHECK_EQ_INT(config_parse_size("16777215T", &v), 0);

	struct kura_config cfg;
	const char *error;
	CHECK_EQ_INT(parse(&cfg, &error, "--plaintext-auth", "always",
			   "--max-append-size", "1024", "--cache-size", "1M",
			   NULL), 0);
	CHECK_EQ_INT(cfg.max_append_size, 1024);
	CHECK_EQ_INT(cfg.cache_size, 1 << 20);
	config_free(&cfg);
}

static void test_listener(void)
{
	struct kura_listener l;
	const char *e;
	CHECK_EQ_INT(config_parse_listener("[fe80::1%eth0]:993", &l, &e), 0);
	CHECK_EQ_STR(l.host, "fe80::1%eth0");
	CHECK_EQ_INT(l.port, 993);
	free(l.host);
	CHECK_EQ_INT(config_parse_listener("mail.example.org:143", &l, &e), 0);
	CHECK_EQ_STR(l.host, "mail.example.org");
	free(l.host);
	CHECK_EQ_INT(config_parse_listener("[::]:65535", &l, &e), 0);
	CHECK_EQ_STR(l.host, "::");
	CHECK_EQ_INT(l.port, 65535);
	free(l.host);
	CHECK(config_parse_listener("[127.0.0.1]:143", &l, &e) < 0);
	CHECK(config_parse_listener("[::1:143", &l, &e) < 0);
	CHECK(config_parse_listener("a b:143", &l, &e) < 0);
	CHECK(config_parse_listener("host:14a3", &l, &e) < 0);
	CHECK(config_parse_listener("host:", &l, &e) < 0);
	CHECK(config_parse_listener("host:+143", &l, &e) < 0);
}

/* Runs parse with stdout sent to a file; returns its content. */
static char *parse_capturing(int *r, const char *arg)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/stdout", dir);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	struct kura_config cfg;
	const char *error;
	*r = parse(&cfg, &error, "--workers", "0", arg, NULL);
	config_free(&cfg);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	FILE *fp = fopen(path, "r");
	static char text[16384];
	size_t n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static void test_usage(void)
{
	int r;
	const char *text = parse_capturing(&r, "--help");
	CHECK_EQ_INT(r, 1);
	static const char *names[] = {
		"--listen HOST:PORT", "--tls-listen", "--tls-cert", "--tls-key",
		"--store", "--cache", "--users", "--workers", "--plaintext-auth",
		"--max-connections ", "--max-connections-per-ip",
		"--max-auth-failures", "--idle-keepalive", "--idle-poll",
		"--snapshot-every", "--max-append-size", "--log-level",
		"--log-file", "--pid-file", "--cache-size", "--session-timeout",
		"--config FILE", "--version",
		"(default: 64M)", "(default: 1800)", "(default: never)",
		"(default: number of online CPUs)",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!contains(text, names[i]))
			fprintf(stderr, "  usage lacks '%s'\n", names[i]);
		CHECK(contains(text, names[i]));
	}
	text = parse_capturing(&r, "--version");
	CHECK_EQ_INT(r, 1);
	CHECK(contains(text, "kura-imapd " KURA_VERSION));
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_defaults();
	test_file();
	test_file_errors();
	test_flag_errors();
	test_sizes();
	test_listener();
	test_usage();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_done("config");
}
