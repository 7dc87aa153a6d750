/* thread: the THREAD command's algorithms (RFC 5256 section 3):
 * ORDEREDSUBJECT and REFERENCES, writing the body of the untagged THREAD
 * response.
 *
 * Everything but the References header comes from the index (the stored
 * ENVELOPE text: Subject, In-Reply-To, Message-ID; msg_meta.sent_date;
 * the internal date). References is not in the ENVELOPE, so REFERENCES
 * asks the caller for it through a callback, which may load the message
 * header and may suspend.
 *
 * Choices where the RFC leaves room:
 * - Message IDs are normalised: between '<' and '>', white space and
 *   comments are dropped and quoted strings lose their quotes and
 *   backslashes, so <"a b"@x> is "a b@x" and <"01KF"@x> equals <01KF@x>.
 *   An ID needs an unquoted '@' with text on both sides and at most
 *   THREAD_MAX_ID bytes; anything else is skipped as not valid.
 *   Comparisons are case-sensitive (RFC 5256).
 * - From References, at most the last THREAD_MAX_REFS valid IDs of the
 *   last THREAD_MAX_REFS_BYTES bytes are used (the nearest ancestors).
 *   Once about THREAD_MAX_REFS_MEMORY bytes are held for the IDs and
 *   references of one command, later messages keep only their last
 *   reference (the parent), so hostile messages cost bounded memory.
 * - The loop check of steps 1.A/1.B walks up at most THREAD_MAX_WALK
 *   ancestors (fewer once a per-command budget is spent); a link whose
 *   check cannot finish is not made, as if it would close a loop.
 * - Sent dates are those of SORT (sort_sent_date: Date:, else internal
 *   date); equal dates go by sequence order (= UID order).
 * - Subject comparisons use the SORT collation keys of base subjects
 *   (sort_subject_key). ORDEREDSUBJECT puts all messages with an empty
 *   base subject in one thread, like any other subject.
 * - Depth is unbounded in the output (a chain of replies nests as deep as
 *   it is long); nothing here recurses. */
#ifndef KURA_THREAD_H
#define KURA_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/index.h"
#include "lib/buf.h"
#include "lib/kstr.h"

#define THREAD_MAX_ID 1024
#define THREAD_MAX_REFS 100
#define THREAD_MAX_REFS_BYTES 65536
#define THREAD_MAX_REFS_MEMORY (64u << 20)
#define THREAD_MAX_WALK 10000

enum thread_alg {
	THREAD_ORDEREDSUBJECT = 0,
	THREAD_REFERENCES,
};

/* Algorithm name from the command (case-insensitive). Returns 0, or
 * KURA_EINVAL for a name this server does not implement (the command
 * then gets BAD, RFC 5256: "arguments invalid"). */
int thread_parse_algorithm(struct kstr name, enum thread_alg *alg_r);

/* Threads the messages uids[0..n) of mb (the search result; any order,
 * duplicates ignored) with alg and appends the thread lists to out, e.g.
 * "(2)(3 6 (4 23)(44 7 96))", nothing when n == 0; the caller writes
 * "* THREAD" and, when something was appended, a space before it.
 * Numbers are UIDs when use_uid, else msns[i] is written for uids[i]
 * (msns parallel to uids; unused and may be NULL when use_uid).
 * A UID that is not in mb counts as a message with no headers and
 * internal date 0.
 *
 * get_refs(ctx, uid, &refs) gives the References header of message uid:
 * its raw value (folded or not; refs.p == NULL when the message has
 * none), a view that must stay valid until get_refs is called again or
 * thread_build returns. It returns 0 or a negative error, which
 * thread_build then returns at once. For THREAD_REFERENCES it is called
 * once per message, in UID order, after everything needed from mb has
 * been copied: mb (and any index pointer) is not touched again, so
 * get_refs may suspend (load the message header). get_refs NULL means
 * no message has References (In-Reply-To is then used). ORDEREDSUBJECT
 * never calls it.
 *
 * Returns 0; the get_refs error (out then holds nothing new); or
 * KURA_ETOOBIG when out's max would be passed (out holds a partial
 * result the caller must drop). Time O(n log n) plus the references. */
int thread_build(enum thread_alg alg, const struct mailbox *mb,
		 const uint32_t *uids, size_t n, bool use_uid,
		 const uint32_t *msns,
		 int (*get_refs)(void *ctx, uint32_t uid, struct kstr *refs_r),
		 void *ctx, struct buf *out);

#endif
