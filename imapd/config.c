#include "imapd/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/kstr.h"
#include "lib/util.h"

enum key_type {
	KT_LISTEN = 0,
	KT_PATH,	/* char *, required non-empty */
	KT_UINT,	/* unsigned, decimal, [min, max] */
	KT_SIZE,	/* uint64_t, with K/M/G/T suffixes, [min, max] */
	KT_PLAINTEXT_AUTH,
	KT_LOG_LEVEL,
	KT_BOOL,	/* yes|no (also true/false, on/off, 1/0) */
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	uint64_t min, max;
	/* Default as it would be written in the file; NULL = unset (or
	 * computed, see apply_defaults()). */
	const char *def;
	const char *arg;	/* placeholder in the usage text */
	const char *help;
	const char *def_help;	/* default shown when def is NULL */
};

#define OFF(field) offsetof(struct kura_config, field)

/* The one table behind parsing, --help and the defaults. docs/config.md
 * mirrors it. */
static const struct key_def keys[] = {
	{ "listen", KT_LISTEN, 0, 0, 0, NULL, "HOST:PORT",
	  "plain IMAP address (STARTTLS if tls-cert is set); repeatable",
	  "127.0.0.1:1143 if neither listen nor tls-listen is given" },
	{ "tls-listen", KT_LISTEN, 0, 0, 0, NULL, "HOST:PORT",
	  "implicit-TLS (IMAPS) address; repeatable", "none" },
	{ "tls-cert", KT_PATH, OFF(tls_cert), 0, 0, NULL, "FILE",
	  "PEM certificate chain, leaf first", "none" },
	{ "tls-key", KT_PATH, OFF(tls_key), 0, 0, NULL, "FILE",
	  "PEM private key of tls-cert", "none" },
	{ "store", KT_PATH, OFF(store), 0, 0, KURA_DEFAULT_STORE, "URI",
	  "object store, e.g. fs:/var/lib/kura/store", NULL },
	{ "cache", KT_PATH, OFF(cache), 0, 0, KURA_DEFAULT_CACHE, "DIR",
	  "local cache directory (may be deleted at any time)", NULL },
	{ "users", KT_PATH, OFF(users), 0, 0, KURA_DEFAULT_USERS, "FILE",
	  "users file (name:{SCHEME}secret lines, see kura-ctl)", NULL },
	{ "workers", KT_UINT, OFF(workers), 1, 1024, NULL, "N",
	  "worker threads (one event loop each)", "number of online CPUs" },
	{ "plaintext-auth", KT_PLAINTEXT_AUTH, OFF(plaintext_auth), 0, 0,
	  "never", "never|loopback|always",
	  "allow LOGIN/AUTHENTICATE without TLS", NULL },
	{ "max-connections", KT_UINT, OFF(max_connections), 1, 10000000,
	  "20000", "N", "connections accepted at once", NULL },
	{ "max-connections-per-ip", KT_UINT, OFF(max_connections_per_ip),
	  0, 10000000, "200", "N",
	  "connections from one client address at once (0 = no limit)",
	  NULL },
	{ "max-auth-failures", KT_UINT, OFF(max_auth_failures), 1, 1000,
	  "3", "N", "failed logins on one connection before BYE", NULL },
	{ "idle-keepalive", KT_UINT, OFF(idle_keepalive), 1, 86400, "120",
	  "SECONDS", "interval of \"* OK Still here\" during IDLE", NULL },
	{ "idle-poll", KT_UINT, OFF(idle_poll), 1, 3600, "5", "SECONDS",
	  "interval of freshness checks for IDLE", NULL },
	{ "snapshot-every", KT_UINT, OFF(snapshot_every), 1, 10000000,
	  "100", "N", "change-log entries between index snapshots", NULL },
	{ "max-append-size", KT_SIZE, OFF(max_append_size), 1024,
	  16ULL << 30, "64M", "SIZE", "largest message APPEND accepts",
	  NULL },
	{ "log-level", KT_LOG_LEVEL, OFF(log_level), 0, 0, "info",
	  "debug|info|warn|error", "lowest level logged", NULL },
	{ "log-file", KT_PATH, OFF(log_file), 0, 0, NULL, "FILE",
	  "append the log to FILE", "stderr" },
	{ "pid-file", KT_PATH, OFF(pid_file), 0, 0, NULL, "FILE",
	  "write the process id to FILE", "none" },
	{ "cache-size", KT_SIZE, OFF(cache_size), 1ULL << 20, 16ULL << 40,
	  "1G", "SIZE", "LMDB map size of the index cache", NULL },
	{ "session-timeout", KT_UINT, OFF(session_timeout), 1, 604800,
	  "1800", "SECONDS",
	  "inactivity outside IDLE before BYE (RFC 3501: >= 30 min)", NULL },
	{ "single-node", KT_BOOL, OFF(single_node), 0, 0, "no", "yes|no",
	  "allow a store that ignores create-only PUT (only one node may "
	  "use it)", NULL },
	{ "body-cache", KT_PATH, OFF(body_cache), 0, 0, NULL, "DIR",
	  "local cache of message bodies", "<cache>/bodies" },
	{ "body-cache-size", KT_SIZE, OFF(body_cache_size), 0, 16ULL << 40,
	  "1G", "SIZE", "bound of the body cache (0 disables it)", NULL },
};

enum {
	KEY_LISTEN = 0,
	KEY_TLS_LISTEN = 1,
	KEY_COUNT = ARRAY_SIZE(keys),
};

/* Where each key was last set, for duplicate detection and defaults. */
struct parse_state {
	struct kura_config *cfg;
	const char *file;
	unsigned file_line[KEY_COUNT];	/* 0 = not in the file */
	bool on_cmdline[KEY_COUNT];
	/* listen/tls-listen from the file and from flags, kept apart so
	 * that flags replace the file's list instead of adding to it. */
	struct kura_listener *lists[2][2];	/* [file/cmd][listen/tls] */
	size_t counts[2][2], caps[2][2];
};

static const char *plaintext_auth_names[] = { "never", "loopback", "always" };
static const char *log_level_names[] = { "debug", "info", "warn", "error" };

const char *config_plaintext_auth_name(enum plaintext_auth v)
{
	return (unsigned)v < ARRAY_SIZE(plaintext_auth_names) ?
		plaintext_auth_names[v] : "?";
}

const char *config_log_level_name(enum log_level v)
{
	return (unsigned)v < ARRAY_SIZE(log_level_names) ?
		log_level_names[v] : "?";
}

__attribute__((format(printf, 2, 3)))
static int set_error(struct kura_config *cfg, const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	free(cfg->error);
	cfg->error = s;
	return -EINVAL;
}

static bool parse_uint(const char *s, uint64_t *val_r)
{
	if (*s == '\0')
		return false;
	return kstr_to_u64(kstr_cstr(s), val_r);
}

int config_parse_size(const char *s, uint64_t *val_r)
{
	size_t digits = 0;
	while (s[digits] >= '0' && s[digits] <= '9')
		digits++;
	if (digits == 0)
		return -EINVAL;
	uint64_t v;
	if (!kstr_to_u64(kstr_make(s, digits), &v))
		return -ERANGE;
	const char *p = s + digits;
	unsigned shift = 0;
	switch (*p) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (shift != 0) {
		p++;
		if (strcasecmp(p, "iB") == 0)
			p += 2;
		else if (strcasecmp(p, "B") == 0)
			p++;
	}
	if (*p != '\0')
		return -EINVAL;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*val_r = v << shift;
	return 0;
}

static bool host_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

int config_parse_listener(const char *s, struct kura_listener *l,
			  const char **error_r)
{
	const char *host, *colon;
	size_t hostlen;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL) {
			*error_r = "missing ']' after IPv6 address";
			return -EINVAL;
		}
		host = s + 1;
		hostlen = (size_t)(end - host);
		if (end[1] != ':') {
			*error_r = "expected ':PORT' after ']'";
			return -EINVAL;
		}
		colon = end + 1;
		for (size_t i = 0; i < hostlen; i++) {
			if (!isxdigit((unsigned char)host[i]) &&
			    host[i] != ':' && host[i] != '.' &&
			    host[i] != '%' && !host_char_ok(host[i])) {
				*error_r = "bad character in IPv6 address";
				return -EINVAL;
			}
		}
		if (memchr(host, ':', hostlen) == NULL) {
			*error_r = "brackets are only for IPv6 addresses";
			return -EINVAL;
		}
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			*error_r = "expected HOST:PORT";
			return -EINVAL;
		}
		host = s;
		hostlen = (size_t)(colon - s);
		if (memchr(host, ':', hostlen) != NULL) {
			*error_r = "IPv6 addresses need brackets: [::1]:143";
			return -EINVAL;
		}
		for (size_t i = 0; i < hostlen; i++) {
			if (!host_char_ok(host[i])) {
				*error_r = "bad character in host name";
				return -EINVAL;
			}
		}
	}
	if (hostlen == 0 || hostlen > 253) {
		*error_r = hostlen == 0 ? "empty host (use 0.0.0.0 or [::])" :
			"host name too long";
		return -EINVAL;
	}
	uint64_t port;
	if (!parse_uint(colon + 1, &port) || port < 1 || port > 65535) {
		*error_r = "port must be a number from 1 to 65535";
		return -EINVAL;
	}
	l->host = xmalloc(hostlen + 1);
	memcpy(l->host, host, hostlen);
	l->host[hostlen] = '\0';
	l->port = (uint16_t)port;
	l->tls = false;
	return 0;
}

static const struct key_def *find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (strlen(keys[i].name) == len &&
		    memcmp(keys[i].name, name, len) == 0)
			return &keys[i];
	}
	return NULL;
}

static int parse_enum(const char *value, const char *const *names, size_t n,
		      unsigned *val_r)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(value, names[i]) == 0) {
			*val_r = (unsigned)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Sets one key from its text. src: 0 = file, 1 = flags. On error
 * returns -EINVAL with a reason in *reason_r (into rbuf or static). */
static int set_value(struct parse_state *ps, const struct key_def *k,
		     const char *value, int src, const char **reason_r,
		     char *rbuf, size_t rbufsize)
{
	struct kura_config *cfg = ps->cfg;
	void *field = (char *)cfg + k->offset;
	uint64_t v;
	unsigned e;

	if (value[0] == '\0') {
		*reason_r = "missing value";
		return -EINVAL;
	}
	switch (k->type) {
	case KT_LISTEN: {
		struct kura_listener l;
		int which = k == &keys[KEY_TLS_LISTEN];
		if (config_parse_listener(value, &l, reason_r) < 0)
			return -EINVAL;
		l.tls = which == 1;
		xgrow((void **)&ps->lists[src][which], &ps->caps[src][which],
		      ps->counts[src][which] + 1, sizeof(l));
		ps->lists[src][which][ps->counts[src][which]++] = l;
		return 0;
	}
	case KT_PATH:
		if (strlen(value) > 4095) {
			*reason_r = "value too long";
			return -EINVAL;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case KT_UINT:
		if (!parse_uint(value, &v)) {
			*reason_r = "expected a number";
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			snprintf(rbuf, rbufsize, "must be from %llu to %llu",
				 (unsigned long long)k->min,
				 (unsigned long long)k->max);
			*reason_r = rbuf;
			return -EINVAL;
		}
		*(unsigned *)field = (unsigned)v;
		return 0;
	case KT_SIZE: {
		int r = config_parse_size(value, &v);
		if (r == -EINVAL) {
			*reason_r = "expected a size such as 65536, 512K, 64M or 1G";
			return -EINVAL;
		}
		if (r < 0 || v < k->min || v > k->max) {
			snprintf(rbuf, rbufsize, "must be from %llu to %llu bytes",
				 (unsigned long long)k->min,
				 (unsigned long long)k->max);
			*reason_r = rbuf;
			return -EINVAL;
		}
		*(uint64_t *)field = v;
		return 0;
	}
	case KT_PLAINTEXT_AUTH:
		if (parse_enum(value, plaintext_auth_names,
			       ARRAY_SIZE(plaintext_auth_names), &e) < 0) {
			*reason_r = "expected never, loopback or always";
			return -EINVAL;
		}
		*(enum plaintext_auth *)field = (enum plaintext_auth)e;
		return 0;
	case KT_BOOL: {
		static const char *yes[] = { "yes", "true", "on", "1" };
		static const char *no[] = { "no", "false", "off", "0" };
		if (parse_enum(value, yes, ARRAY_SIZE(yes), &e) == 0) {
			*(bool *)field = true;
			return 0;
		}
		if (parse_enum(value, no, ARRAY_SIZE(no), &e) == 0) {
			*(bool *)field = false;
			return 0;
		}
		*reason_r = "expected yes or no";
		return -EINVAL;
	}
	case KT_LOG_LEVEL:
		if (parse_enum(value, log_level_names,
			       ARRAY_SIZE(log_level_names), &e) < 0) {
			*reason_r = "expected debug, info, warn or error";
			return -EINVAL;
		}
		*(enum log_level *)field = (enum log_level)e;
		return 0;
	}
	*reason_r = "internal error";
	return -EINVAL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses one line of the file in place. */
static int parse_line(struct parse_state *ps, char *line, unsigned lineno)
{
	const char *file = ps->file;
	char *p = line;

	while (is_space(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	char *key = p;
	while (*p != '\0' && *p != '=' && !is_space(*p))
		p++;
	size_t keylen = (size_t)(p - key);
	while (is_space(*p))
		p++;
	if (*p != '=')
		return set_error(ps->cfg, "%s:%u: expected 'key = value'",
				 file, lineno);
	p++;
	while (is_space(*p))
		p++;

	char *value = p, *end;
	if (*p == '"') {
		value = ++p;
		end = strchr(p, '"');
		if (end == NULL)
			return set_error(ps->cfg, "%s:%u: missing closing '\"'",
					 file, lineno);
		p = end + 1;
		while (is_space(*p))
			p++;
		if (*p != '\0' && *p != '#')
			return set_error(ps->cfg,
					 "%s:%u: text after closing '\"'",
					 file, lineno);
	} else {
		/* A '#' after whitespace starts a comment; elsewhere (a path
		 * like /srv/a#b) it is part of the value. */
		end = p;
		while (*end != '\0' &&
		       !(*end == '#' && end > value && is_space(end[-1])))
			end++;
		while (end > value && is_space(end[-1]))
			end--;
	}
	*end = '\0';

	const struct key_def *k = find_key(key, keylen);
	if (k == NULL) {
		key[keylen] = '\0';
		return set_error(ps->cfg, "%s:%u: unknown key '%s'", file,
				 lineno, key);
	}
	size_t idx = (size_t)(k - keys);
	if (k->type != KT_LISTEN && ps->file_line[idx] != 0)
		return set_error(ps->cfg,
				 "%s:%u: duplicate key '%s' (first set on line %u)",
				 file, lineno, k->name, ps->file_line[idx]);
	ps->file_line[idx] = lineno;
	const char *reason;
	char rbuf[128];
	if (set_value(ps, k, value, 0, &reason, rbuf, sizeof(rbuf)) < 0)
		return set_error(ps->cfg, "%s:%u: %s: %s", file, lineno,
				 k->name, reason);
	return 0;
}

static int parse_file(struct parse_state *ps, const char *path)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL) {
		int err = errno;
		set_error(ps->cfg, "%s: cannot open config file: %s", path,
			  strerror(err));
		return -err;
	}
	ps->file = path;
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int ret = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			ret = set_error(ps->cfg, "%s:%u: NUL byte in line",
					path, lineno);
			break;
		}
		ret = parse_line(ps, line, lineno);
		if (ret < 0)
			break;
	}
	if (ret == 0 && ferror(fp)) {
		int err = errno;
		ret = -err;
		set_error(ps->cfg, "%s: read error: %s", path, strerror(err));
	}
	free(line);
	fclose(fp);
	return ret;
}

/* "--name" or "--name=value" -> key; *value_r set for the '=' form. */
static const struct key_def *flag_key(const char *arg, const char **value_r)
{
	const char *name = arg + 2;
	const char *eq = strchr(name, '=');
	*value_r = eq != NULL ? eq + 1 : NULL;
	return find_key(name, eq != NULL ? (size_t)(eq - name) : strlen(name));
}

static int parse_flags(struct parse_state *ps, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value;
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
			return set_error(ps->cfg,
					 "command line: unexpected argument '%s' (see --help)",
					 arg);
		if (strncmp(arg, "--config", 8) == 0 &&
		    (arg[8] == '\0' || arg[8] == '=')) {
			if (arg[8] == '\0')
				i++;
			continue;
		}
		const struct key_def *k = flag_key(arg, &value);
		if (k == NULL) {
			size_t len = strcspn(arg, "=");
			return set_error(ps->cfg,
					 "command line: unknown option '%.*s' (see --help)",
					 (int)len, arg);
		}
		if (value == NULL) {
			if (i + 1 >= argc)
				return set_error(ps->cfg,
						 "command line: --%s needs a value",
						 k->name);
			value = argv[++i];
		}
		ps->on_cmdline[k - keys] = true;
		const char *reason;
		char rbuf[128];
		if (set_value(ps, k, value, 1, &reason, rbuf,
			      sizeof(rbuf)) < 0)
			return set_error(ps->cfg, "command line: --%s: %s",
					 k->name, reason);
	}
	return 0;
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > 1024 ? 1024 : (unsigned)n;
}

static int apply_defaults(struct parse_state *ps)
{
	struct kura_config *cfg = ps->cfg;
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (ps->file_line[i] != 0 || ps->on_cmdline[i] ||
		    keys[i].def == NULL)
			continue;
		const char *reason;
		char rbuf[128];
		if (set_value(ps, &keys[i], keys[i].def, 0, &reason, rbuf,
			      sizeof(rbuf)) < 0)
			return set_error(cfg, "default of %s: %s",
					 keys[i].name, reason);
	}
	size_t widx = (size_t)(find_key("workers", 7) - keys);
	if (ps->file_line[widx] == 0 && !ps->on_cmdline[widx])
		cfg->workers = online_cpus();
	return 0;
}

/* Moves the listener lists into cfg: per key, the flags' list if the
 * flags named that key at all, else the file's. */
static void merge_listeners(struct parse_state *ps)
{
	struct kura_config *cfg = ps->cfg;
	for (int which = 0; which < 2; which++) {
		int src = ps->counts[1][which] > 0 ? 1 : 0;
		size_t n = ps->counts[src][which];
		if (n == 0)
			continue;
		cfg->listeners = xrealloc(cfg->listeners,
					  (cfg->listener_count + n) *
					  sizeof(*cfg->listeners));
		memcpy(cfg->listeners + cfg->listener_count,
		       ps->lists[src][which], n * sizeof(*cfg->listeners));
		cfg->listener_count += n;
		ps->counts[src][which] = 0;
	}
	if (cfg->listener_count == 0) {
		cfg->listeners = xmalloc(sizeof(*cfg->listeners));
		cfg->listeners[0] = (struct kura_listener){
			xstrdup("127.0.0.1"), 1143, false };
		cfg->listener_count = 1;
	}
}

static void free_state(struct parse_state *ps)
{
	for (int src = 0; src < 2; src++) {
		for (int which = 0; which < 2; which++) {
			for (size_t i = 0; i < ps->counts[src][which]; i++)
				free(ps->lists[src][which][i].host);
			free(ps->lists[src][which]);
		}
	}
}

static int check_config(struct kura_config *cfg)
{
	bool any_tls = false;
	for (size_t i = 0; i < cfg->listener_count; i++) {
		const struct kura_listener *a = &cfg->listeners[i];
		any_tls = any_tls || a->tls;
		for (size_t j = 0; j < i; j++) {
			const struct kura_listener *b = &cfg->listeners[j];
			if (a->port == b->port && strcmp(a->host, b->host) == 0)
				return set_error(cfg,
						 "address %s port %u is listed twice",
						 a->host, a->port);
		}
	}
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		return set_error(cfg, "tls-cert and tls-key must be set together");
	if (any_tls && cfg->tls_cert == NULL)
		return set_error(cfg, "tls-listen needs tls-cert and tls-key");
	if (cfg->plaintext_auth == PLAINTEXT_AUTH_NEVER && cfg->tls_cert == NULL)
		return set_error(cfg,
				 "plaintext-auth is 'never' but no tls-cert is set, "
				 "so no client could log in: set tls-cert and tls-key, "
				 "or plaintext-auth = loopback");
	const char *colon = strchr(cfg->store, ':');
	bool scheme_ok = colon != NULL && colon > cfg->store && colon[1] != '\0';
	for (const char *p = cfg->store; scheme_ok && p < colon; p++)
		scheme_ok = islower((unsigned char)*p) ||
			isdigit((unsigned char)*p);
	if (!scheme_ok)
		return set_error(cfg, "store must look like SCHEME:LOCATION "
				 "(e.g. fs:/var/lib/kura/store), not '%s'",
				 cfg->store);
	return 0;
}

int config_parse(int argc, char **argv, struct kura_config *cfg,
		 const char **error_r)
{
	struct parse_state ps;
	int ret = 0;

	memset(cfg, 0, sizeof(*cfg));
	memset(&ps, 0, sizeof(ps));
	ps.cfg = cfg;

	/* --help/--version win over everything else; --config is read
	 * before the other flags so that they override it. */
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			config_usage(stdout);
			return 1;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("kura-imapd %s\n", KURA_VERSION);
			return 1;
		}
		if (strcmp(arg, "--config") == 0) {
			if (i + 1 >= argc) {
				ret = set_error(cfg, "command line: --config needs a value");
				goto out;
			}
			free(cfg->config_file);
			cfg->config_file = xstrdup(argv[++i]);
		} else if (strncmp(arg, "--config=", 9) == 0) {
			free(cfg->config_file);
			cfg->config_file = xstrdup(arg + 9);
		} else if (strncmp(arg, "--", 2) == 0 && strchr(arg, '=') == NULL &&
			   find_key(arg + 2, strlen(arg + 2)) != NULL) {
			i++;	/* skip the value, which may look like a flag */
		}
	}
	if (cfg->config_file != NULL) {
		if (cfg->config_file[0] == '\0') {
			ret = set_error(cfg, "command line: --config needs a value");
			goto out;
		}
		ret = parse_file(&ps, cfg->config_file);
		if (ret < 0)
			goto out;
	}
	ret = parse_flags(&ps, argc, argv);
	if (ret < 0)
		goto out;
	ret = apply_defaults(&ps);
	if (ret < 0)
		goto out;
	merge_listeners(&ps);
	ret = check_config(cfg);
out:
	free_state(&ps);
	if (ret < 0)
		*error_r = cfg->error;
	return ret;
}

void config_free(struct kura_config *cfg)
{
	for (size_t i = 0; i < cfg->listener_count; i++)
		free(cfg->listeners[i].host);
	free(cfg->listeners);
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (keys[i].type == KT_PATH)
			free(*(char **)((char *)cfg + keys[i].offset));
	}
	free(cfg->config_file);
	free(cfg->error);
	memset(cfg, 0, sizeof(*cfg));
}

void config_usage(FILE *fp)
{
	fprintf(fp,
		"Usage: kura-imapd [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
		"\n"
		"  --config FILE  read `key = value` lines from FILE first; flags override it\n"
		"  --help         print this text and exit\n"
		"  --version      print the version and exit\n"
		"\n"
		"Keys (each also valid in the config file; sizes take K/M/G/T suffixes):\n");
	for (size_t i = 0; i < KEY_COUNT; i++) {
		const struct key_def *k = &keys[i];
		char left[64];
		snprintf(left, sizeof(left), "--%s %s", k->name, k->arg);
		if (strlen(left) > 34)
			fprintf(fp, "  %s\n  %-34s %s\n", left, "", k->help);
		else
			fprintf(fp, "  %-34s %s\n", left, k->help);
		fprintf(fp, "  %-34s (default: %s)\n", "",
			k->def != NULL ? k->def : k->def_help);
	}
}
