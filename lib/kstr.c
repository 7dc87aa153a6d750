#include "lib/kstr.h"

#include <stdlib.h>
#include <strings.h>

#include "lib/util.h"

bool kstr_eq(struct kstr a, struct kstr b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool kstr_eq_ci(struct kstr a, const char *s)
{
	size_t n = strlen(s);
	return a.len == n && (n == 0 || strncasecmp((const char *)a.p, s, n) == 0);
}

bool kstr_has_prefix_ci(struct kstr a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.len >= n && strncasecmp((const char *)a.p, prefix, n) == 0;
}

bool kstr_to_u64(struct kstr s, uint64_t *val_r)
{
	uint64_t v = 0;

	if (s.len == 0 || s.len > 20)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s.p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*val_r = v;
	return true;
}

char *kstr_dup(struct kstr s)
{
	char *r = xmalloc(s.len + 1);
	if (s.len > 0)
		memcpy(r, s.p, s.len);
	r[s.len] = '\0';
	return r;
}
