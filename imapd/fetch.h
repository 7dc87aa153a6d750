/* fetch: FETCH data items (RFC 3501 6.4.5, 7.4.2; BINARY of RFC 3516)
 * parsed once per command, then rendered per message. */
#ifndef KURA_FETCH_H
#define KURA_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imapd/imap_parser.h"
#include "index/index.h"
#include "lib/arena.h"
#include "lib/buf.h"

struct fetch_items;

/* Parses the data items: one argument that is a macro (ALL, FAST, FULL),
 * a single item atom, or a parenthesised list of items. uid_cmd: UID
 * FETCH (UID is always returned: first, unless the client listed it).
 * Section specs are validated here (mime_section_is_valid; BINARY takes
 * part numbers only). Repeated items are answered once. Allocations from
 * a. Returns 0 or KURA_EINVAL with *error_r (tagged BAD). */
int fetch_parse(struct arena *a, const struct imap_arg *arg, bool uid_cmd,
		struct fetch_items **items_r, const char **error_r);
/* Whether rendering needs the message bytes (BODY[...], BINARY[...],
 * RFC822, RFC822.HEADER, RFC822.TEXT, BINARY.SIZE). */
bool fetch_items_need_message(const struct fetch_items *it);
/* Whether a non-PEEK body section (or RFC822 / RFC822.TEXT) is fetched,
 * which sets \Seen. */
bool fetch_items_set_seen(const struct fetch_items *it);
/* Whether FLAGS is among the items. */
bool fetch_items_has_flags(const struct fetch_items *it);
/* Whether MODSEQ is among the items (RFC 7162: enables CONDSTORE). */
bool fetch_items_has_modseq(const struct fetch_items *it);
/* Adds MODSEQ at the end unless present (CHANGEDSINCE, or CONDSTORE
 * enabled and FLAGS fetched); needs no allocation. */
void fetch_items_add_modseq(struct fetch_items *it);

/* Writes one complete "* msn FETCH (...)\r\n" response for m, in the
 * order items were requested; add_flags: also write FLAGS (after \Seen
 * was set implicitly) when not requested. msg: the message bytes when
 * fetch_items_need_message(), else ignored (it is also used to compute
 * ENVELOPE/BODY/BODYSTRUCTURE when m->meta lacks them). Body sections are
 * always sent as literals ({0} when empty), BINARY as literal8 (~{n})
 * when the decoded bytes contain NUL. Returns 0, KURA_ETOOBIG if out->max
 * is passed, or KURA_ECORRUPT when a BINARY part has an unknown
 * Content-Transfer-Encoding (tagged NO [UNKNOWN-CTE], RFC 3516); on error
 * nothing is appended to out. */
int fetch_render(struct buf *out, const struct fetch_items *it,
		 const struct mailbox *mb, const struct index_msg *m,
		 uint32_t msn, bool recent, bool add_flags, struct kstr msg);

#endif
