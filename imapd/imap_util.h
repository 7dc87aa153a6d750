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

/* Parses "1,3:5,7:*" etc. Returns false on bad syntax, zero, a number
 * with a leading zero or above 4294967295, or more than max_ranges
 * ranges as written (0: no limit). star: value of '*'; with star 0 (an
 * empty mailbox) '*' stands for 0, which matches no message. The result
 * is malloc'ed; free with seqset_free(). On failure *set_r is empty and
 * needs no freeing. */
bool seqset_parse(struct kstr s, uint32_t star, size_t max_ranges,
		  struct seqset *set_r);
bool seqset_contains(const struct seqset *set, uint32_t v);
void seqset_free(struct seqset *set);
/* Whether s is syntactically a sequence set (for telling a set from a
 * search key). */
bool seqset_is_valid(struct kstr s);
/* Writes a sorted array of numbers as a compact set ("1:3,7");
 * duplicates are allowed, n = 0 writes nothing. */
void seqset_write(struct buf *out, const uint32_t *v, size_t n);

/* Modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8. Both return false on
 * malformed input (e.g. non-canonical base64, "&" not closed, bad
 * UTF-8) or when out's max is reached; out may then hold a part.
 * Canonical means: printable ASCII only directly ("&-" for "&"), raw
 * bytes only 0x20-0x7e, base64 runs of whole UTF-16 characters with
 * zero padding bits and no spare digit, valid surrogate pairs, no two
 * runs side by side, no U+0000. utf8_to_mutf7() writes exactly that
 * form, so the two are inverse. */
bool mutf7_to_utf8(struct kstr in, struct buf *out);
bool utf8_to_mutf7(struct kstr in, struct buf *out);
/* Whether in is valid modified UTF-7. */
bool mutf7_is_valid(struct kstr in);

/* Date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (APPEND, INTERNALDATE), without
 * the quotes; the day may also be " d" or "d", the month any case.
 * Returns false on bad syntax or range (year 0000, a day the month
 * lacks, zone beyond +-2359). *t_r: seconds since the epoch (UTC);
 * *tz_min_r: zone offset in minutes. */
bool imap_datetime_parse(struct kstr s, int64_t *t_r, int *tz_min_r);
/* Writes the quoted INTERNALDATE form for t shown in zone tz_min
 * ("\"05-Mar-2024 10:00:00 +0100\"", two-digit day); years are clamped
 * to 0001-9999, a zone beyond +-2359 is shown as +0000. */
void imap_datetime_write(struct buf *out, int64_t t, int tz_min);
/* Date "d-Mon-yyyy" or "dd-Mon-yyyy" (SEARCH); *t_r = 00:00 UTC of that
 * day. */
bool imap_date_parse(struct kstr s, int64_t *t_r);

/* Writes s as a quoted string when every byte is quotable (no CR, LF,
 * NUL, 8-bit; '"' and '\\' escaped), else as a literal {n}\r\n... */
void imap_write_string(struct buf *out, struct kstr s);
/* Always quoted or literal (never an atom); NIL for a NULL pointer. */
void imap_write_nstring(struct buf *out, const uint8_t *p, size_t len);
/* Writes a mailbox name (wire form, mUTF-7) as an astring: an atom when
 * every byte is an ATOM-CHAR other than '[' and it is not "NIL", else as
 * imap_write_string(). */
void imap_write_astring(struct buf *out, struct kstr s);
/* Whether c may appear in an atom (RFC 3501 ATOM-CHAR). */
bool imap_is_atom_char(uint8_t c);

#endif
