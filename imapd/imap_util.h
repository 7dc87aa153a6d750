/* imap_util: IMAP value syntax shared by the handlers: sequence sets,
 * modified UTF-7 mailbox names, date-times, and writing strings back to
 * a client in the right form. */
#ifndef KURA_IMAP_UTIL_H
#define KURA_IMAP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/kstr.h"

/* A sequence set: sorted, merged, non-overlapping closed ranges. '*' is
 * resolved against `star` (the largest sequence number or UID in use, 0
 * when the mailbox is empty) at parse time; "n:m" with n > m is
 * normalised. For UID sets, a range entirely above star still counts
 * (RFC 3501: "*" or "n:*" always matches the highest UID). */
struct seqset_range {
	uint32_t lo, hi;
};
struct seqset {
	struct seqset_range *r;	/* malloc'ed */
	size_t count;
};

/* Parses "1,3:5,7:*" etc. Returns false on bad syntax, zero, or more than
 * max_ranges ranges. star: value of '*'. The result is malloc'ed; free
 * with seqset_free(). */
bool seqset_parse(struct kstr s, uint32_t star, size_t max_ranges,
		  struct seqset *set_r);
bool seqset_contains(const struct seqset *set, uint32_t v);
void seqset_free(struct seqset *set);
/* Whether s is syntactically a sequence set (for telling a set from a
 * search key). */
bool seqset_is_valid(struct kstr s);
/* Writes a sorted array of numbers as a compact set ("1:3,7"). */
void seqset_write(struct buf *out, const uint32_t *v, size_t n);

/* Modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8. Both return false on
 * malformed input (e.g. non-canonical base64, "&" not closed, bad
 * UTF-8). */
bool mutf7_to_utf8(struct kstr in, struct buf *out);
bool utf8_to_mutf7(struct kstr in, struct buf *out);
/* Whether in is valid modified UTF-7. */
bool mutf7_is_valid(struct kstr in);

/* Date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (APPEND, INTERNALDATE). Returns
 * false on bad syntax or range. *tz_min_r: zone offset in minutes. */
bool imap_datetime_parse(struct kstr s, int64_t *t_r, int *tz_min_r);
/* Writes the quoted INTERNALDATE form for t shown in zone tz_min. */
void imap_datetime_write(struct buf *out, int64_t t, int tz_min);
/* Date "d-Mon-yyyy" or "dd-Mon-yyyy" (SEARCH); *t_r = 00:00 UTC of that
 * day. */
bool imap_date_parse(struct kstr s, int64_t *t_r);

/* Writes s as a quoted string when every byte is quotable (no CR, LF,
 * NUL, 8-bit; '"' and '\\' escaped), else as a literal {n}\r\n... */
void imap_write_string(struct buf *out, struct kstr s);
/* Always quoted or literal (never an atom); NIL for a NULL pointer. */
void imap_write_nstring(struct buf *out, const uint8_t *p, size_t len);
/* Writes a mailbox name (wire form, mUTF-7) as an astring. */
void imap_write_astring(struct buf *out, struct kstr s);
/* Whether c may appear in an atom (RFC 3501 ATOM-CHAR). */
bool imap_is_atom_char(uint8_t c);

#endif
