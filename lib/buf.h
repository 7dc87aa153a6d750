/* buf: a bounded, growable byte buffer.
 *
 * data[pos..len) holds unread bytes; data[len..cap) is free room.
 * `max` bounds cap (0 = unbounded, for internal use only: every buffer that
 * holds bytes from the network has a max). */
#ifndef KURA_BUF_H
#define KURA_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/kstr.h"

struct buf {
	uint8_t *data;
	size_t pos, len, cap, max;
};

/* Empty buffer that may grow to max bytes (0 = no bound). No allocation
 * happens until the first reserve. */
void buf_init(struct buf *b, size_t max);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buf_deinit(struct buf *b);
/* Room for n more bytes at data+len, or NULL if that would pass max.
 * Compacts consumed bytes (pos) away first, so pointers into the
 * buffer are invalid after a call. */
uint8_t *buf_reserve(struct buf *b, size_t n);
/* Marks n reserved bytes as written. */
void buf_commit(struct buf *b, size_t n);
/* Appends; false (nothing appended) if max would be passed. */
bool buf_append(struct buf *b, const void *p, size_t n);
bool buf_append_str(struct buf *b, const char *s);
bool buf_append_kstr(struct buf *b, struct kstr s);
/* printf-style append; false if max would be passed. */
bool buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Unread bytes. */
static inline size_t buf_used(const struct buf *b) { return b->len - b->pos; }
static inline uint8_t *buf_head(const struct buf *b)
{
	return b->data != NULL ? b->data + b->pos : NULL;
}
static inline struct kstr buf_kstr(const struct buf *b)
{
	if (b->data == NULL)
		return kstr_make(NULL, 0);
	return kstr_make(b->data + b->pos, b->len - b->pos);
}
/* Marks n unread bytes as read. */
void buf_consume(struct buf *b, size_t n);
/* Drops all content, keeps the memory. */
void buf_reset(struct buf *b);
/* Returns a NUL-terminated view (appends a NUL past len without
 * counting it); NULL if max does not allow. */
const char *buf_cstr(struct buf *b);

#endif
