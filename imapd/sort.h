/* sort: the SORT command's ordering (RFC 5256, with DISPLAYFROM and
 * DISPLAYTO of SORT=DISPLAY, RFC 5957), computed from what the index
 * keeps per message (size, internal date, msg_meta: the ENVELOPE text and
 * the sent date); message bytes are never read, nothing here suspends.
 *
 * Choices where the RFCs leave room:
 * - Collation: RFC 5256 section 7 asks for i;unicode-casemap. Strings are
 *   compared as bytes after RFC 2047 decoding to UTF-8 and simple Unicode
 *   case folding (utf8_casefold of index/mime.h), with ASCII letters then
 *   mapped to upper case, so that ASCII text orders exactly as under
 *   i;ascii-casemap and i;unicode-casemap (both map to upper/title
 *   case). No canonical decomposition is done.
 * - A string key is compared on its first SORT_MAX_KEY bytes; a Subject
 *   is read up to SORT_MAX_SUBJECT raw bytes. Messages that differ only
 *   beyond that compare equal and fall back to UID order.
 * - FROM/TO/CC use the addr-mailbox of the first address structure of
 *   the list (a group start gives the group name), with the quotes of a
 *   quoted local part removed. A missing list is the empty string.
 * - DISPLAYFROM/DISPLAYTO (RFC 5957 section 3): the decoded addr-name of
 *   the first address if it is not empty or white space; else
 *   "mailbox@host"; else the mailbox; else the empty string.
 * - DATE: the sent date (Date: as UTC, msg_meta.sent_date), or the
 *   internal date when the message has none (RFC 5256 2.2).
 * - Ties, after all criteria, go by UID ascending (= sequence order,
 *   RFC 5256: the implicit last criterion, never reversed). */
#ifndef KURA_SORT_H
#define KURA_SORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imapd/imap_parser.h"
#include "index/index.h"
#include "lib/arena.h"
#include "lib/buf.h"
#include "lib/kstr.h"

/* Sort criteria in one command, REVERSE prefixes not counted. */
#define SORT_MAX_CRITERIA 32
/* Bytes of a collation key that take part in comparisons. */
#define SORT_MAX_KEY 256
/* Raw bytes of a Subject value considered for its base subject. */
#define SORT_MAX_SUBJECT 8192

struct sort_criteria;

/* Parses the parenthesised sort-criteria argument (RFC 5256 section 5:
 * "(" ["REVERSE" SP] sort-key *(SP ["REVERSE" SP] sort-key) ")", keys
 * ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO, any case,
 * atoms only). The result is allocated from a and valid until its reset.
 * Returns 0, or KURA_EINVAL with *error_r (static text, meant to follow
 * "tag BAD ") for anything else: not a list, an empty list, an unknown
 * key, REVERSE not followed by a key (or twice in a row), more than
 * SORT_MAX_CRITERIA keys. */
int sort_parse_criteria(struct arena *a, const struct imap_arg *list,
			struct sort_criteria **crit_r, const char **error_r);

/* Whether DISPLAYFROM or DISPLAYTO is used (the client asked for
 * SORT=DISPLAY; nothing to enable, for logging). */
bool sort_criteria_uses_display(const struct sort_criteria *c);

/* Sorts uids[0..n) in place by the criteria. Every UID should be in mb;
 * one that is not sorts as a message with no headers, size 0 and
 * internal date 0. Keys are computed once per message (O(n) envelope
 * parses) and the sort is O(n log n) comparisons; memory is O(n) keys of
 * at most SORT_MAX_KEY bytes each. mb is only read. */
void sort_messages(const struct sort_criteria *c, const struct mailbox *mb,
		   uint32_t *uids, size_t n);

/* ---- Helpers shared with thread.c (and tests) ---- */

/* Appends to out the base subject (RFC 5256 section 2.1) of a raw
 * Subject value as stored in the ENVELOPE (raw.p == NULL: no Subject,
 * an empty base subject): RFC 2047 words decoded to UTF-8, tabs and line
 * breaks made spaces, runs of spaces made one, then the trailer, leader,
 * blob and [fwd: ...] removals of steps 2-6. Case is kept.
 * *is_reply_r (may be NULL) tells whether a subj-refwd, a "(fwd)"
 * trailer or a subj-fwd-hdr/subj-fwd-trl pair was removed (a reply or
 * forward for THREAD=REFERENCES). */
void sort_base_subject(struct kstr raw, struct buf *out, bool *is_reply_r);
/* Appends the collation key of UTF-8 text (see the choices above),
 * truncated to SORT_MAX_KEY bytes: two strings are equal under the
 * collation when their keys are equal, and order as their keys compare
 * with memcmp (a prefix first). */
void sort_collate_key(struct kstr utf8, struct buf *out);
/* sort_base_subject then sort_collate_key. */
void sort_subject_key(struct kstr raw, struct buf *out, bool *is_reply_r);
/* The RFC 5256 2.2 sent date of a message: Date: as Unix time, or the
 * internal date when Date: is missing or bad. */
int64_t sort_sent_date(const struct index_msg *m);

#endif
