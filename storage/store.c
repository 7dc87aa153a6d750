#include "storage/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

static __thread char store_errbuf[256];

/* "s3:URL" with the keys from the environment (store.h). */
static int store_open_s3(const char *url, struct store **store_r,
			 const char **error_r)
{
	struct store_s3_options o;
	const char *style = getenv("KURA_S3_ADDRESSING");

	memset(&o, 0, sizeof(o));
	o.access_key = getenv("AWS_ACCESS_KEY_ID");
	o.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
	o.session_token = getenv("AWS_SESSION_TOKEN");
	o.region = getenv("AWS_REGION");
	o.ca_file = getenv("KURA_S3_CA_FILE");
	if (o.access_key == NULL || o.access_key[0] == '\0' ||
	    o.secret_key == NULL || o.secret_key[0] == '\0') {
		if (error_r != NULL)
			*error_r = "store: an s3: store needs AWS_ACCESS_KEY_ID "
				"and AWS_SECRET_ACCESS_KEY in the environment";
		return KURA_EINVAL;
	}
	if (style != NULL && strcmp(style, "virtual") == 0) {
		o.virtual_host = true;
	} else if (style != NULL && style[0] != '\0' &&
		   strcmp(style, "path") != 0) {
		if (error_r != NULL)
			*error_r = "store: KURA_S3_ADDRESSING must be \"path\" "
				"or \"virtual\"";
		return KURA_EINVAL;
	}
	/* http(s)://host/bucket/prefix...: the prefix is ours, not S3's. */
	const char *hostpart = strstr(url, "://");
	const char *slash = hostpart != NULL ? strchr(hostpart + 3, '/') : NULL;
	const char *slash2 = slash != NULL ? strchr(slash + 1, '/') : NULL;
	if (slash2 != NULL && slash2[1] != '\0' && !o.virtual_host) {
		char *base = xmalloc((size_t)(slash2 - url) + 1);
		memcpy(base, url, (size_t)(slash2 - url));
		base[slash2 - url] = '\0';
		struct store *inner = NULL;
		int ret = store_s3_create(base, &o, &inner, error_r);
		free(base);
		if (ret < 0)
			return ret;
		*store_r = store_prefix_wrap(inner, slash2 + 1);
		return 0;
	}
	return store_s3_create(url, &o, store_r, error_r);
}

int store_open(const char *spec, struct store **store_r,
	       const char **error_r)
{
	const char *colon = strchr(spec, ':');
	char esc[40];

	*store_r = NULL;
	if (strncmp(spec, "fs:", 3) == 0) {
		if (spec[3] == '\0') {
			if (error_r != NULL)
				*error_r = "store: \"fs:\" needs a directory";
			return KURA_EINVAL;
		}
		return store_fs_create(spec + 3, store_r, error_r);
	}
	if (strncmp(spec, "s3:", 3) == 0)
		return store_open_s3(spec + 3, store_r, error_r);
	/* Only the type is echoed: the rest of a spec may hold
	 * credentials. */
	log_escape(spec, colon != NULL ? (size_t)(colon - spec) : strlen(spec),
		   esc, sizeof(esc));
	snprintf(store_errbuf, sizeof(store_errbuf),
		 "store: unknown store type \"%s\" (expected fs:DIR or "
		 "s3:URL)", esc);
	if (error_r != NULL)
		*error_r = store_errbuf;
	return KURA_EINVAL;
}

void store_close(struct store **s)
{
	if (*s == NULL)
		return;
	(*s)->ops->destroy(*s);
	*s = NULL;
}

void store_list_free(struct store_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->keys[i]);
	free(l->keys);
	l->keys = NULL;
	l->count = 0;
	l->truncated = false;
}

int store_check_create_only(struct store *s, const char **error_r)
{
	char key[64], hex[33];
	uint8_t rnd[16];
	const char *err = NULL;
	int r;

	/* A fresh key each time: a probe left by a crash cannot make a
	 * later check fail. */
	random_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), "kura-probe/create-only/%s", hex);
	r = store_put(s, key, "1", 1, STORE_PUT_CREATE_ONLY, NULL, error_r);
	if (r < 0)
		return r;
	r = store_put(s, key, "2", 1, STORE_PUT_CREATE_ONLY, NULL, &err);
	if (r == KURA_ECONFLICT) {
		r = 0;
	} else if (r == 0) {
		snprintf(store_errbuf, sizeof(store_errbuf),
			 "store: %s ignores create-only PUT (If-None-Match: "
			 "*): a second PUT of %s succeeded", s->ops->name,
			 key);
		if (error_r != NULL)
			*error_r = store_errbuf;
		r = KURA_EINVAL;
	} else {
		/* the probe stays: deleting it could overwrite err */
		if (error_r != NULL)
			*error_r = err;
		return r;
	}
	if (store_del(s, key, &err) < 0)
		log_warn("store: delete %s: %s", key, err);
	return r;
}

bool store_key_is_valid(const char *key)
{
	const char *comp = key;	/* start of the current component */
	const char *p;

	if (key == NULL)
		return false;
	for (p = key; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c > 0x7e)
			return false;
		if (p - key >= STORE_KEY_MAX)
			return false;
		if (c == '.' && p[1] == '.')
			return false;
		if (c == '/') {
			/* leading '/', "//" and "." components would alias
			 * other keys on a file system */
			if (p == comp || (p - comp == 1 && comp[0] == '.'))
				return false;
			comp = p + 1;
		}
	}
	return *comp != '\0' && strcmp(comp, ".") != 0;
}
