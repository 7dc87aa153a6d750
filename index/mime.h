/* mime: RFC 5322 / MIME (RFC 2045-2049) parsing of a stored message, once
 * at APPEND time, into what IMAP FETCH serves: ENVELOPE, BODYSTRUCTURE,
 * BODY; and at FETCH/SEARCH time, section extraction and decoded text
 * search. Never does I/O. Hostile input: malformed, truncated, 8-bit,
 * bare-LF, deeply nested messages never crash and get a sane structure
 * (nesting beyond MIME_MAX_DEPTH is treated as an opaque leaf part). */
#ifndef KURA_MIME_H
#define KURA_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/kstr.h"

#define MIME_MAX_DEPTH 32
#define MIME_MAX_PARTS 2000

/* What APPEND computes and the index stores. Strings are malloc'ed,
 * NUL-terminated, and already in IMAP syntax, e.g. envelope =
 * ("Mon, 7 Feb 1994 21:52:25 -0800" "subject" (("name" NIL "mbox" "host"))
 * ...). */
struct mime_info {
	char *envelope;		/* ENVELOPE value */
	char *bodystructure;	/* BODYSTRUCTURE value (with extension data) */
	char *body;		/* BODY value (no extension data) */
	int64_t sent_date;	/* Date: header as Unix time, -1 if none/bad */
	int sent_tz_min;	/* its zone offset in minutes */
	uint32_t header_size;	/* bytes of the top header incl. blank line */
	uint32_t lines;		/* lines in the whole message */
};

/* Parses msg. Always succeeds for any input (the worst message is one
 * text/plain part); returns 0. Free with mime_info_free(). */
int mime_parse(const uint8_t *msg, size_t len, struct mime_info *info_r);
void mime_info_free(struct mime_info *info);

/* Whether spec is a valid section-spec (the text between [ and ] of
 * BODY[...]: "", "HEADER", "TEXT", "1.2", "1.2.MIME", "3.HEADER.FIELDS
 * (From To)", "HEADER.FIELDS.NOT (X)", case-insensitive), at most
 * MIME_MAX_DEPTH part numbers. */
bool mime_section_is_valid(struct kstr spec);
/* Appends to out the bytes of BODY[spec] of msg (RFC 3501 6.4.5 and 3516
 * semantics: a part number that does not exist yields an empty result;
 * HEADER.FIELDS keeps matching header lines in original order, plus the
 * terminating blank line). Returns 0, KURA_EINVAL for an invalid spec,
 * or KURA_ETOOBIG when out->max is passed. */
int mime_section(const uint8_t *msg, size_t len, struct kstr spec,
		 struct buf *out);
/* Like mime_section for a part ("1.2", no HEADER/TEXT/MIME suffix) but
 * with its content-transfer-encoding (base64, quoted-printable) undone,
 * for FETCH BINARY[part]. Returns KURA_EINVAL for a bad spec and
 * KURA_ECORRUPT for an unknown encoding. */
int mime_section_binary(const uint8_t *msg, size_t len, struct kstr spec,
			struct buf *out);

/* Search helpers. needle is UTF-8; matching is a case-insensitive
 * substring match after decoding (RFC 2047 encoded-words in headers,
 * transfer encodings and charsets of text parts, converted to UTF-8).
 * An empty needle matches whenever the searched thing exists. */
/* Header `name` (e.g. "Subject") of the top-level message. */
bool mime_search_header(const uint8_t *msg, size_t len, struct kstr name,
			struct kstr needle);
/* Bodies of all text parts (BODY); with_headers also searches all
 * header fields (TEXT). */
bool mime_search_text(const uint8_t *msg, size_t len, struct kstr needle,
		      bool with_headers);
/* Decoded (RFC 2047, unfolded) value of the first header `name` of the
 * top-level message into out as UTF-8; false if absent. For SORT. */
bool mime_header_decoded(const uint8_t *msg, size_t len, struct kstr name,
			 struct buf *out);

/* Folds UTF-8 text for case-insensitive comparison (simple Unicode case
 * folding; invalid bytes kept as they are). */
void utf8_casefold(struct kstr in, struct buf *out);

#endif
