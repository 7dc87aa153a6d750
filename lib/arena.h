/* arena: a region allocator for one command or one request. Everything
 * allocated from it is freed at once by arena_reset()/arena_destroy(),
 * after the cleanup hooks have run (last registered runs first). */
#ifndef KURA_ARENA_H
#define KURA_ARENA_H

#include <stddef.h>

#include "lib/kstr.h"

struct arena;

struct arena *arena_create(size_t chunk_size);
void arena_destroy(struct arena **a);
/* Runs cleanup hooks, frees all but the first chunk. */
void arena_reset(struct arena *a);
/* 16-byte aligned memory valid until the next reset; never NULL. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const void *p, size_t n);
/* Copies the view into the arena (NUL-terminated after len). */
struct kstr arena_kstr(struct arena *a, struct kstr s);
char *arena_printf(struct arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* fn(ctx) runs at the next reset/destroy. */
void arena_add_cleanup(struct arena *a, void (*fn)(void *), void *ctx);
/* Bytes handed out since the last reset (for budgets). */
size_t arena_used(const struct arena *a);

#endif
