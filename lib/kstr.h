/* kstr: a byte view. Never NUL-terminated by contract (a literal8 can
 * hold NUL); the bytes are owned by whoever handed out the view. */
#ifndef KURA_KSTR_H
#define KURA_KSTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kstr {
	const uint8_t *p;
	size_t len;
};

#define KSTR_LIT(s) ((struct kstr){ (const uint8_t *)(s), sizeof(s) - 1 })

static inline struct kstr kstr_make(const void *p, size_t len)
{
	return (struct kstr){ (const uint8_t *)p, len };
}

static inline struct kstr kstr_cstr(const char *s)
{
	return (struct kstr){ (const uint8_t *)s, strlen(s) };
}

/* Exact byte equality. */
bool kstr_eq(struct kstr a, struct kstr b);
/* ASCII case-insensitive equality with a C string. */
bool kstr_eq_ci(struct kstr a, const char *s);
/* ASCII case-insensitive prefix test. */
bool kstr_has_prefix_ci(struct kstr a, const char *prefix);
/* Parses a decimal number that fits in uint64_t; no sign, no spaces,
 * no leading '+'. Returns false on any other input or overflow. */
bool kstr_to_u64(struct kstr s, uint64_t *val_r);
/* Returns a malloc'ed NUL-terminated copy; caller frees. */
char *kstr_dup(struct kstr s);

#endif
