#include "lib/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	_Alignas(16) uint8_t data[];
};

struct arena_cleanup {
	struct arena_cleanup *next;
	void (*fn)(void *);
	void *ctx;
};

struct arena {
	struct arena_chunk *head;
	struct arena_cleanup *cleanups;
	size_t chunk_size, used;
};

static struct arena_chunk *chunk_new(size_t size)
{
	struct arena_chunk *c = xmalloc(sizeof(*c) + size);
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct arena *arena_create(size_t chunk_size)
{
	struct arena *a = xcalloc(1, sizeof(*a));
	a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
	a->head = chunk_new(a->chunk_size);
	return a;
}

static void run_cleanups(struct arena *a)
{
	while (a->cleanups != NULL) {
		struct arena_cleanup *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->ctx);
	}
}

void arena_reset(struct arena *a)
{
	run_cleanups(a);
	/* The first chunk is the list's tail: free every chunk before it. */
	while (a->head->next != NULL) {
		struct arena_chunk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
	a->head->used = 0;
	a->used = 0;
}

void arena_destroy(struct arena **ap)
{
	struct arena *a = *ap;
	if (a == NULL)
		return;
	run_cleanups(a);
	while (a->head != NULL) {
		struct arena_chunk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
	free(a);
	*ap = NULL;
}

void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	struct arena_chunk *c = a->head;
	if (c->size - c->used < n) {
		size_t size = n > a->chunk_size ? n : a->chunk_size;
		c = chunk_new(size);
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->used += n;
	return p;
}

void *arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const void *p, size_t n)
{
	char *r = arena_alloc(a, n + 1);
	if (n > 0)
		memcpy(r, p, n);
	r[n] = '\0';
	return r;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

struct kstr arena_kstr(struct arena *a, struct kstr s)
{
	char *r = arena_strndup(a, s.p, s.len);
	return kstr_make(r, s.len);
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	char *r = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(r, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return r;
}

void arena_add_cleanup(struct arena *a, void (*fn)(void *), void *ctx)
{
	struct arena_cleanup *c = arena_alloc(a, sizeof(*c));
	c->fn = fn;
	c->ctx = ctx;
	c->next = a->cleanups;
	a->cleanups = c;
}

size_t arena_used(const struct arena *a)
{
	return a->used;
}
