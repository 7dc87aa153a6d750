/* config: the configuration of kura-imapd.
 *
 * Every key can be set in a config file (`key = value` lines, see
 * docs/config.md) and by a command-line flag `--key value` or
 * `--key=value`; flags override the file. `--config FILE` names the file
 * (there is no implicit one). Keys, defaults and ranges are listed by
 * config_usage() and in docs/config.md; both come from one table in
 * config.c.
 *
 * Not thread-safe; meant to be called once at startup. */
#ifndef KURA_CONFIG_H
#define KURA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/log.h"

#ifndef KURA_VERSION
#define KURA_VERSION "0.1.0"
#endif

/* Defaults shared with kura-ctl (relative to the working directory). */
#define KURA_DEFAULT_STORE "fs:./kura-data/store"
#define KURA_DEFAULT_CACHE "./kura-data/cache"
#define KURA_DEFAULT_USERS "./kura-data/users"

enum plaintext_auth {
	PLAINTEXT_AUTH_NEVER = 0,	/* LOGIN/AUTHENTICATE only under TLS */
	PLAINTEXT_AUTH_LOOPBACK = 1,	/* also from 127.0.0.0/8 and ::1 */
	PLAINTEXT_AUTH_ALWAYS = 2,
};

/* One address to listen on. host is an IP literal or a name, without the
 * brackets of "[::1]:143"; tls = implicit TLS (IMAPS, from tls-listen),
 * otherwise plain IMAP with STARTTLS when a certificate is configured. */
struct kura_listener {
	char *host;
	uint16_t port;
	bool tls;
};

struct kura_config {
	/* listen entries first, then tls-listen entries, each in the order
	 * given. Never empty after a successful config_parse(). */
	struct kura_listener *listeners;
	size_t listener_count;

	char *tls_cert;		/* PEM path, NULL if unset */
	char *tls_key;		/* PEM path, NULL if unset */
	char *store;		/* "fs:/path" or another backend URI */
	char *cache;		/* directory */
	char *users;		/* users file */
	unsigned workers;	/* >= 1 */
	enum plaintext_auth plaintext_auth;
	unsigned max_connections;
	unsigned max_connections_per_ip;	/* 0 = no limit */
	unsigned max_auth_failures;	/* per connection, then BYE */
	unsigned idle_keepalive;	/* seconds */
	unsigned idle_poll;		/* seconds */
	unsigned snapshot_every;	/* log entries between snapshots */
	uint64_t max_append_size;	/* bytes */
	enum log_level log_level;
	char *log_file;		/* NULL = stderr */
	char *pid_file;		/* NULL = none */
	uint64_t cache_size;	/* bytes (LMDB map size) */
	unsigned session_timeout;	/* seconds, outside IDLE */
	bool single_node;	/* allow a store without create-only PUT */
	char *body_cache;	/* directory, NULL = <cache>/bodies */
	uint64_t body_cache_size;	/* bytes, 0 = no body cache */
	char *config_file;	/* the --config file, or NULL */

	/* private */
	char *error;
};

/* Fills *cfg (which need not be initialised) from the --config file, if
 * any, then from the flags in argv[1..argc-1] (argv[0] is the program
 * name), then fills in defaults and checks the whole (e.g. tls-listen
 * needs tls-cert and tls-key).
 *
 * Returns 0 when the server should run; 1 when --help or --version was
 * given and its text has been printed to stdout (the caller exits 0);
 * negative (-EINVAL, or -errno when the file cannot be read) with
 * *error_r set to a message such as "kura.conf:12: unknown key 'foo'".
 * *error_r is owned by cfg and valid until config_free(cfg).
 * In every case the caller calls config_free(cfg) afterwards. */
int config_parse(int argc, char **argv, struct kura_config *cfg,
		 const char **error_r);

/* Frees everything cfg owns; cfg is zeroed and may be parsed again. */
void config_free(struct kura_config *cfg);

/* Prints the usage text: every key with its default and a one-line
 * description. */
void config_usage(FILE *fp);

/* Parses "HOST:PORT" or "[V6ADDR]:PORT" into *l (host malloc'ed, tls
 * false). Returns 0 or -EINVAL with a static reason in *error_r. */
int config_parse_listener(const char *s, struct kura_listener *l,
			  const char **error_r);

/* Parses a byte size: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024, case-insensitive, optionally followed by "B" or
 * "iB"). Returns 0 or -EINVAL (syntax) / -ERANGE (overflow). */
int config_parse_size(const char *s, uint64_t *val_r);

/* Static name of a value, as written in the file. */
const char *config_plaintext_auth_name(enum plaintext_auth v);
const char *config_log_level_name(enum log_level v);

#endif
