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

/* Choices where the RFCs leave room (RFC 3501 7.4.2):
 * - media type and subtype are written as sent in Content-Type; a missing
 *   or syntactically invalid Content-Type gives "text" "plain"
 *   ("charset" "us-ascii"); a text/ part without a charset parameter gets
 *   ("charset" "us-ascii") appended to its parameters. In multipart/digest
 *   the default is message/rfc822.
 * - a missing or empty Content-Transfer-Encoding is "7BIT".
 * - the first occurrence of a duplicated header field is used.
 * - parameters: RFC 2231 continuations (name*0, name*1...) are joined in
 *   order up to the first missing index; if any piece is extended
 *   (name*0*=charset'lang'%xx) the result is named "name*" and keeps the
 *   charset'lang'%xx form (plain pieces are %-encoded where needed), so
 *   the client decodes it. A repeated parameter name keeps the first.
 * - body-fld-lines = LF bytes in the body, plus one when the body is not
 *   empty and does not end with LF. Body sizes are octets as stored.
 *   The line break before a boundary delimiter belongs to the delimiter.
 *   A delimiter line matches only "--boundary" followed by white space,
 *   "--" or the line end (no prefix match); a delimiter at the very end
 *   of the message starts no new part.
 * - a multipart with no boundary parameter or no delimiter in its body
 *   has one empty text/plain child (the grammar needs one); a container
 *   (multipart, message/rfc822) nested MIME_MAX_DEPTH deep, or a
 *   message/rfc822 met once MIME_MAX_PARTS parts exist, is an opaque leaf
 *   written as "application" "octet-stream" with its other fields; a
 *   multipart adds no children past MIME_MAX_PARTS parts. message/rfc822 is parsed as a
 *   message whatever its Content-Transfer-Encoding claims (RFC 2046 5.2.1
 *   allows only identity encodings there).
 * - ENVELOPE strings are the raw header values with line breaks removed
 *   and surrounding white space trimmed (no RFC 2047 decoding); NUL bytes
 *   are dropped; a value with 8-bit bytes or CR/LF is sent as a literal.
 *   Addresses: quoted strings (display name, local part) are unquoted
 *   like UW c-client and Dovecot do; the words of a name are joined by
 *   single spaces, CFWS inside a local part or domain is dropped; an
 *   addr-spec followed by a comment uses the comment as name; a missing
 *   local part or domain is "MISSING_MAILBOX" / "MISSING_DOMAIN"; a lone
 *   atom is a mailbox, a lone phrase a name; absent or empty Sender and
 *   Reply-To are the From list.
 * - Content-Language is always written as a list: ("en" "fr").
 */

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
/* BODY: the bodies of text/ and message/ leaf parts (decoded) and the
 * header fields of attached messages, which are body of this one. With
 * with_headers (TEXT) also every header field of the message and of its
 * parts, each as "Name: decoded value". */
bool mime_search_text(const uint8_t *msg, size_t len, struct kstr needle,
		      bool with_headers);
/* Decoded (RFC 2047, unfolded) value of the first header `name` of the
 * top-level message into out as UTF-8; false if absent. For SORT. */
bool mime_header_decoded(const uint8_t *msg, size_t len, struct kstr name,
			 struct buf *out);

/* Folds UTF-8 text for case-insensitive comparison (simple Unicode case
 * folding of Latin, Greek, Cyrillic, Armenian and fullwidth letters;
 * invalid bytes kept as they are). */
void utf8_casefold(struct kstr in, struct buf *out);

/* Lower-level helpers (index/mime_decode.c, index/mime_addr.c). Each
 * appends to out and returns false when out->max would be passed (out
 * then holds a partial result). */

/* Base64 (lenient: characters outside the alphabet are skipped, '='
 * ends a quantum so concatenated encodings decode). */
bool mime_base64_decode(struct kstr in, struct buf *out);
/* Quoted-printable: =XX (either case), soft line breaks, trailing white
 * space removed; a malformed '=' is kept as it is. */
bool mime_qp_decode(struct kstr in, struct buf *out);
/* Converts in from charset to UTF-8 with iconv; US-ASCII, UTF-8, an empty
 * or unknown charset copy the bytes unchanged; invalid input sequences
 * become U+FFFD. */
bool mime_charset_to_utf8(struct kstr charset, struct kstr in,
			  struct buf *out);
/* Header value to UTF-8: line breaks removed, RFC 2047 encoded-words (B
 * and Q) decoded with white space between adjacent words dropped, raw
 * 8-bit text that is not valid UTF-8 taken as ISO-8859-1. */
bool mime_header_decode(struct kstr in, struct buf *out);
/* Appends p as an IMAP string: "quoted" (with \ and \" escapes) when
 * every byte is 7-bit and not CR/LF, otherwise a literal {n}\r\n...;
 * NUL bytes are dropped. */
bool mime_imap_string(struct buf *out, const uint8_t *p, size_t len);
/* Appends the ENVELOPE address list of a raw header value (RFC 5322 with
 * obsolete forms, groups and routes; see the choices above), or NIL when
 * it holds no address. *written_r tells which. */
bool mime_address_list(struct kstr value, struct buf *out, bool *written_r);
/* Parses an RFC 5322 date (obsolete forms too: 2-digit years, named
 * zones, no seconds, no day name). *t_r is Unix time (clamped at 0),
 * *tz_min_r the zone offset. false if it is not a date. */
bool mime_date_parse(struct kstr s, int64_t *t_r, int *tz_min_r);

#endif
