/* search: IMAP SEARCH criteria (RFC 3501 6.4.4, with the RFC 9051 and
 * extension keys added later) parsed from the command's arguments into a
 * program, then evaluated per message. */
#ifndef KURA_SEARCH_H
#define KURA_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imapd/imap_parser.h"
#include "index/index.h"
#include "lib/arena.h"

/* Returned by search_parse for an unknown CHARSET (tagged NO
 * [BADCHARSET (UTF-8 US-ASCII)]). */
#define SEARCH_EBADCHARSET (-20100)

struct search_prog;

/* What a message looks like to the evaluator. load() fetches the message
 * bytes (only called when search_prog_needs_message() is true, at most
 * once per message; the evaluator keeps the view for the rest of that
 * message's evaluation). It may suspend; evaluate only with pointers it
 * hands back. */
struct search_msg {
	const struct mailbox *mb;
	const struct index_msg *m;
	uint32_t msn;
	bool recent;
	int (*load)(void *ctx, struct kstr *msg_r);
	void *load_ctx;
};

/* Parses criteria args[0..n) ("[CHARSET x] key..."; all keys ANDed).
 * max_msn / max_uid resolve '*'. Allocations come from a (valid until
 * its reset). Returns 0, KURA_EINVAL with *error_r for bad syntax (BAD),
 * or SEARCH_EBADCHARSET. Nesting of parentheses/NOT/OR is bounded by the
 * parser's depth limit plus an own limit of 100. */
int search_parse(struct arena *a, const struct imap_arg *args, size_t n,
		 uint32_t max_msn, uint32_t max_uid,
		 struct search_prog **prog_r, const char **error_r);
/* Whether any key needs the message bytes (HEADER/FROM/.../BODY/TEXT,
 * SENT*: uses meta->sent_date, so no). */
bool search_prog_needs_message(const struct search_prog *p);
/* Whether a MODSEQ key is used (RFC 7162 3.1.5: the untagged SEARCH
 * response then ends with "(MODSEQ n)", and CONDSTORE is enabled). */
bool search_prog_uses_modseq(const struct search_prog *p);
/* Evaluates; 0 with *match_r, or the load() error. Everything taken from
 * sm->mb / sm->m (flags, keywords, sizes, dates) is read before load() is
 * called, so those pointers may go stale when load() suspends.
 * Dates: BEFORE/ON/SINCE compare the internal date's calendar date in the
 * zone it was given in (idate_tz_min); SENT* use meta->sent_date in its
 * own zone, or the internal date when the message has no usable Date:.
 * OLDER/YOUNGER compare against the wall clock read at search_parse(). */
int search_match(const struct search_prog *p, const struct search_msg *sm,
		 bool *match_r);

#endif
