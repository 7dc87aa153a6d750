#include "storage/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/log.h"

static __thread char store_errbuf[256];

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
	/* Only the type is echoed: the rest of a spec may hold
	 * credentials. */
	log_escape(spec, colon != NULL ? (size_t)(colon - spec) : strlen(spec),
		   esc, sizeof(esc));
	snprintf(store_errbuf, sizeof(store_errbuf),
		 "store: unknown store type \"%s\" (expected fs:DIR)", esc);
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
