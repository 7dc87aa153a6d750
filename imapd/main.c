/* kura-imapd: the IMAP server's main(). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/bodycache.h"
#include "cache/cache.h"
#include "imapd/config.h"
#include "imapd/imapd.h"
#include "imapd/tls.h"
#include "imapd/users.h"
#include "index/index.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/offload.h"
#include "lib/util.h"
#include "storage/store.h"

static struct server srv;

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig = 0;
	sigwait(set, &sig);
	log_info("event=shutdown signal=%d", sig);
	server_stop(&srv);
	return NULL;
}

int main(int argc, char **argv)
{
	struct kura_config cfg;
	const char *error = NULL;

	/* Block the stop signals before any thread exists (the cache starts
	 * one), so that only the signal thread below receives them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	int ret = config_parse(argc, argv, &cfg, &error);
	if (ret == 1) {
		config_free(&cfg);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "kura-imapd: %s\n", error ? error : "invalid configuration");
		config_free(&cfg);
		return 2;
	}
	log_set_level(cfg.log_level);
	if (cfg.log_file != NULL && log_open(cfg.log_file) < 0) {
		fprintf(stderr, "kura-imapd: cannot open log file %s: %s\n", cfg.log_file,
			strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	struct store *store = NULL;
	if (store_open(cfg.store, &store, &error) < 0) {
		log_error("event=startup-failed what=store error=\"%s\"", error);
		fprintf(stderr, "kura-imapd: store %s: %s\n", cfg.store, error);
		return 1;
	}
	/* Several nodes may share the store only if it honours create-only
	 * PUT: that is what keeps the change log linearizable. */
	ret = store_check_create_only(store, &error);
	if (ret == KURA_EINVAL && !cfg.single_node) {
		log_error("event=startup-failed what=store-check error=\"create-only PUT not honoured\"");
		fprintf(stderr, "kura-imapd: store %s does not honour create-only PUT "
			"(If-None-Match: *); refusing to run where several nodes could share it "
			"(set single-node = yes if only this node will ever use it)\n", cfg.store);
		return 1;
	} else if (ret < 0 && ret != KURA_EINVAL) {
		/* The store is down: start anyway; clients get NO [UNAVAILABLE]
		 * until it is back. */
		log_warn("event=store-check-failed error=\"%s\"", error ? error : "unavailable");
	}
	struct cache *cache = NULL;
	if (cache_open(cfg.cache, cfg.cache_size, &cache, &error) < 0) {
		log_error("event=startup-failed what=cache error=\"%s\"", error);
		fprintf(stderr, "kura-imapd: cache %s: %s\n", cfg.cache, error);
		return 1;
	}
	/* Message bytes on local disk, LRU-bounded: FETCH of a cached body
	 * makes no store request. */
	struct bodycache *bodycache = NULL;
	char *bc_dir = NULL;
	if (cfg.body_cache_size > 0) {
		const char *dir = cfg.body_cache;
		if (dir == NULL) {
			bc_dir = xmalloc(strlen(cfg.cache) + 8);
			sprintf(bc_dir, "%s/bodies", cfg.cache);
			dir = bc_dir;
		}
		if (bodycache_open(dir, cfg.body_cache_size, &bodycache, &error) < 0) {
			log_error("event=startup-failed what=body-cache error=\"%s\"", error);
			fprintf(stderr, "kura-imapd: body cache %s: %s\n", dir, error);
			return 1;
		}
	}
	struct users *users = NULL;
	if (users_load(cfg.users, &users, &error) < 0) {
		fprintf(stderr, "kura-imapd: users %s: %s\n", cfg.users, error);
		return 1;
	}
	struct tls_ctx *tls = NULL;
	if (cfg.tls_cert != NULL && cfg.tls_key != NULL) {
		tls = tls_ctx_create(cfg.tls_cert, cfg.tls_key, &error);
		if (tls == NULL) {
			fprintf(stderr, "kura-imapd: TLS: %s\n", error);
			return 1;
		}
	}
	struct index_settings iset = {
		.snapshot_every = cfg.snapshot_every,
		.max_message_size = cfg.max_append_size,
		.bodycache = bodycache,
	};
	srv.index = index_create(store, cache, &iset);
	srv.users = users;
	srv.tls = tls;
	srv.set.listeners = xcalloc(cfg.listener_count, sizeof(struct server_listener));
	for (size_t i = 0; i < cfg.listener_count; i++) {
		srv.set.listeners[i].host = cfg.listeners[i].host;
		srv.set.listeners[i].port = cfg.listeners[i].port;
		srv.set.listeners[i].tls = cfg.listeners[i].tls;
		if (cfg.listeners[i].tls && tls == NULL) {
			fprintf(stderr, "kura-imapd: tls-listen needs tls-cert and tls-key\n");
			return 2;
		}
	}
	srv.set.nlisteners = (unsigned)cfg.listener_count;
	srv.set.workers = cfg.workers;
	srv.set.plaintext_auth = cfg.plaintext_auth;
	srv.set.max_connections = cfg.max_connections;
	srv.set.max_connections_per_ip = cfg.max_connections_per_ip;
	srv.set.max_auth_failures = cfg.max_auth_failures;
	srv.set.idle_keepalive_sec = cfg.idle_keepalive;
	srv.set.idle_poll_sec = cfg.idle_poll;
	srv.set.session_timeout_sec = cfg.session_timeout;
	srv.set.max_append_size = cfg.max_append_size;
	/* Large APPEND literals are spooled beside the cache. */
	char *spool = xmalloc(strlen(cfg.cache) + 8);
	sprintf(spool, "%s/spool", cfg.cache);
	mkdir(spool, 0700);
	srv.set.spool_dir = spool;
	srv.auth_limits = imap_parser_limits_default;
	srv.auth_limits.max_append = cfg.max_append_size;

	if (server_start(&srv, &error) < 0) {
		log_error("event=startup-failed error=\"%s\"", error);
		fprintf(stderr, "kura-imapd: %s\n", error);
		return 1;
	}
	if (cfg.pid_file != NULL) {
		FILE *fp = fopen(cfg.pid_file, "w");
		if (fp != NULL) {
			fprintf(fp, "%d\n", (int)getpid());
			fclose(fp);
		}
	}
	log_info("event=started version=%s store=%s cache=%s users=%s", KURA_VERSION, cfg.store,
		 cfg.cache, cfg.users);
	pthread_t st;
	pthread_create(&st, NULL, signal_thread, &set);
	server_wait(&srv);
	pthread_join(st, NULL);

	offload_shutdown();
	index_destroy(&srv.index);
	bodycache_close(&bodycache);
	free(bc_dir);
	cache_close(&cache);
	store_close(&store);
	users_destroy(&users);
	if (tls != NULL)
		tls_ctx_destroy(&tls);
	free(srv.set.listeners);
	free(spool);
	if (cfg.pid_file != NULL)
		unlink(cfg.pid_file);
	config_free(&cfg);
	log_info("event=stopped");
	return 0;
}
