/* Small shared helpers: allocation that aborts on failure, hashing,
 * randomness, hex, time. */
#ifndef KURA_UTIL_H
#define KURA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KURA_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KURA_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation failure aborts the process (STYLE.md): these never return
 * NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Growable array helper: makes room for at least `need` elements of
 * `size` bytes in *arr with capacity *cap. */
void xgrow(void **arr, size_t *cap, size_t need, size_t size);

/* 64-bit FNV-1a; stable across runs and machines (used in object keys). */
uint64_t hash64(const void *p, size_t len);
/* Fills buf with cryptographically random bytes (getrandom). */
void random_bytes(void *buf, size_t len);
/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Parses exactly 2*len hex digits; false on anything else. */
bool hex_decode(const char *in, size_t inlen, uint8_t *out, size_t len);

/* Monotonic clock in microseconds. */
uint64_t time_mono_usec(void);
/* Wall clock in seconds. */
int64_t time_wall_sec(void);

#endif
