/* envelope: reads back the ENVELOPE text that index/mime.c computed at
 * APPEND (struct msg_meta.envelope, RFC 3501 7.4.2 syntax), so that SORT
 * and THREAD get Date, Subject, the first From/To/Cc address,
 * In-Reply-To and Message-ID without loading the message. Never does
 * I/O; the text is treated as untrusted (a damaged index record must not
 * crash the reader). */
#ifndef KURA_ENVELOPE_H
#define KURA_ENVELOPE_H

#include <stddef.h>

#include "lib/arena.h"
#include "lib/kstr.h"

/* An address structure; every field is NIL when its p is NULL. A group
 * start has host NIL and the group name as mailbox; a group end has
 * mailbox and host NIL (RFC 3501 7.4.2). */
struct envelope_addr {
	struct kstr name, adl, mailbox, host;
};

enum envelope_list {
	ENVELOPE_FROM = 0,
	ENVELOPE_SENDER,
	ENVELOPE_REPLY_TO,
	ENVELOPE_TO,
	ENVELOPE_CC,
	ENVELOPE_BCC,
	ENVELOPE_NLISTS,
};

struct envelope {
	/* Header values as stored (raw: RFC 2047 words not decoded);
	 * p == NULL for NIL. */
	struct kstr date, subject, in_reply_to, message_id;
	/* The first address structure of each list (all NIL when the list
	 * is NIL) and how many structures the list holds. */
	struct envelope_addr first[ENVELOPE_NLISTS];
	size_t naddrs[ENVELOPE_NLISTS];
};

/* Parses text: "(" date SP subject SP from SP sender SP reply-to SP to
 * SP cc SP bcc SP in-reply-to SP message-id ")", strings quoted or as
 * literals ({n}CRLF...), NIL. Views point into text, except quoted
 * strings that held escapes, whose unescaped copies are allocated from a
 * (valid until its reset); so the result lives as long as both. Returns
 * 0, or KURA_ECORRUPT for text that is not an envelope, in which case
 * *env_r is all NIL (what an absent envelope means to SORT/THREAD).
 * Trailing bytes after the closing parenthesis are ignored. */
int envelope_parse(struct arena *a, struct kstr text, struct envelope *env_r);

#endif
