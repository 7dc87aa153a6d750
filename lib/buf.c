#include "lib/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void buf_deinit(struct buf *b)
{
	free(b->data);
	size_t max = b->max;
	memset(b, 0, sizeof(*b));
	b->max = max;
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->data == NULL && n == 0)
		n = 1;	/* never compute NULL + 0 */
	if (b->pos > 0 && b->cap - b->len < n) {
		memmove(b->data, b->data + b->pos, b->len - b->pos);
		b->len -= b->pos;
		b->pos = 0;
	}
	if (b->cap - b->len >= n)
		return b->data + b->len;
	if (n > SIZE_MAX / 2 - b->len)
		return NULL;
	size_t need = b->len + n;
	if (b->max != 0 && need > b->max)
		return NULL;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	if (b->max != 0 && ncap > b->max)
		ncap = b->max;
	b->data = xrealloc(b->data, ncap);
	b->cap = ncap;
	return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

bool buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return true;
	uint8_t *d = buf_reserve(b, n);
	if (d == NULL)
		return false;
	memcpy(d, p, n);
	b->len += n;
	return true;
}

bool buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

bool buf_append_kstr(struct buf *b, struct kstr s)
{
	return buf_append(b, s.p, s.len);
}

bool buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char small[256];
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return false;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	uint8_t *d = buf_reserve(b, (size_t)n + 1);
	if (d == NULL)
		return false;
	vsnprintf((char *)d, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return true;
}

bool buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool ok = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return ok;
}

void buf_consume(struct buf *b, size_t n)
{
	b->pos += n;
	if (b->pos >= b->len)
		b->pos = b->len = 0;
}

void buf_reset(struct buf *b)
{
	b->pos = b->len = 0;
}

const char *buf_cstr(struct buf *b)
{
	uint8_t *d = buf_reserve(b, 1);
	if (d == NULL)
		return NULL;
	*d = '\0';
	return (const char *)b->data + b->pos;
}
