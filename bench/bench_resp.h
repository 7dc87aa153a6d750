/* bench_resp: the response side of kura-bench's IMAP client.
 *
 * Three layers, none of which does I/O:
 *  - a resumable reader that assembles one complete server response
 *    (a line plus any number of {n} literals inside it, of any length up
 *    to a limit) from bytes fed in arbitrary pieces;
 *  - a tokenizer over a complete response (atoms, quoted strings,
 *    literals, parentheses);
 *  - parsers for the response shapes the bench checks: status and
 *    untagged responses, FETCH data items, STATUS and LIST data.
 * Every parser treats its input as hostile: no assertion, no read past
 * the view, nesting bounded. */
#ifndef KURA_BENCH_RESP_H
#define KURA_BENCH_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/kstr.h"

/* ---- reader ---- */

struct bench_resp_reader {
	struct buf acc;		/* the response being assembled */
	uint64_t lit_left;	/* literal bytes still expected */
	size_t line_start;	/* offset of the current line segment in acc */
	bool complete;		/* acc holds a response handed out last time */
};

/* Empty reader for responses of at most max bytes (line and literals
 * together). No allocation until the first byte. */
void bench_resp_reader_init(struct bench_resp_reader *r, size_t max);
void bench_resp_reader_deinit(struct bench_resp_reader *r);
/* Forgets any partial response (after a reconnect); keeps memory. */
void bench_resp_reader_reset(struct bench_resp_reader *r);

/* Consumes bytes from in[0..len) up to the end of the first complete
 * response and sets *used_r to the number consumed.
 * Returns 1 with *resp_r set to the whole response without its final
 * line ending (literals included verbatim); the view stays valid until
 * the next call on r. Returns 0 when all of in was consumed and the
 * response is not complete yet. Returns -EMSGSIZE when the response would
 * pass max, -EPROTO on a malformed literal length; the reader must then
 * be reset (the stream cannot be resynchronized). A line ends at LF (a
 * CR before it is dropped too). */
int bench_resp_reader_feed(struct bench_resp_reader *r, const uint8_t *in,
			   size_t len, size_t *used_r, struct kstr *resp_r);

/* ---- tokenizer ---- */

enum bench_resp_tok_type {
	BENCH_RESP_TOK_END = 0,	/* no more input */
	BENCH_RESP_TOK_ATOM,		/* incl. NIL, numbers, \Flags, BODY[...]<n> */
	BENCH_RESP_TOK_QUOTED,	/* value: the bytes between the quotes, raw */
	BENCH_RESP_TOK_LITERAL,	/* value: the literal's bytes */
	BENCH_RESP_TOK_LPAREN,
	BENCH_RESP_TOK_RPAREN,
	BENCH_RESP_TOK_ERROR,	/* malformed: unterminated string, bad {n} */
};

struct bench_resp_tok {
	const uint8_t *p, *end;
};

static inline void bench_resp_tok_init(struct bench_resp_tok *t, struct kstr s)
{
	t->p = s.p;
	t->end = s.p + s.len;
}

/* Skips spaces, then returns the next token with its bytes in *val_r
 * (a view into the tokenized input). An atom runs to a space, a
 * parenthesis, a quote or the end; a '[' inside an atom extends it to the
 * matching ']' (so "BODY[HEADER.FIELDS (A B)]<0>" is one atom). */
enum bench_resp_tok_type bench_resp_tok_next(struct bench_resp_tok *t, struct kstr *val_r);
/* Returns the type of the next token without consuming it. */
enum bench_resp_tok_type bench_resp_tok_peek(const struct bench_resp_tok *t);
/* Skips one value: an atom, string, literal or a parenthesized list
 * (nested up to 64 deep). False on malformed input or END. */
bool bench_resp_tok_skip_value(struct bench_resp_tok *t);

/* ---- responses ---- */

enum bench_resp_kind {
	BENCH_RESP_TAGGED = 0,
	BENCH_RESP_UNTAGGED,
	BENCH_RESP_CONT,	/* "+ ..." */
};

struct bench_resp {
	enum bench_resp_kind kind;
	struct kstr tag;	/* tagged responses only */
	/* OK/NO/BAD/BYE/PREAUTH, or the untagged keyword (CAPABILITY,
	 * LIST, EXISTS, FETCH, ...); compare case-insensitively */
	struct kstr word;
	bool has_num;		/* "* 12 EXISTS": num 12, word EXISTS */
	uint64_t num;
	/* status responses: the response code without brackets, e.g.
	 * "APPENDUID 1 5"; empty when none */
	struct kstr code;
	struct kstr rest;	/* what follows word (and code) */
};

/* Splits one complete response. Returns 0 or -EPROTO (no tag, empty
 * keyword, bad number, unterminated response code). */
int bench_resp_parse(struct kstr line, struct bench_resp *r);
/* Is word (of a status response) one of OK/NO/BAD/BYE/PREAUTH. */
bool bench_resp_is_status(const struct bench_resp *r);

/* FETCH data items the bench asks for and checks (bits of items). */
enum bench_fetch_item {
	BENCH_FI_UID = 1 << 0,
	BENCH_FI_FLAGS = 1 << 1,
	BENCH_FI_ENVELOPE = 1 << 2,
	BENCH_FI_SIZE = 1 << 3,		/* RFC822.SIZE */
	BENCH_FI_INTERNALDATE = 1 << 4,
	BENCH_FI_BODY = 1 << 5,		/* BODY[] */
	BENCH_FI_HEADER = 1 << 6,	/* BODY[HEADER] */
};

enum bench_msg_flag {
	BENCH_FLAG_SEEN = 1 << 0,
	BENCH_FLAG_DELETED = 1 << 1,
	BENCH_FLAG_FLAGGED = 1 << 2,
	BENCH_FLAG_ANSWERED = 1 << 3,
	BENCH_FLAG_DRAFT = 1 << 4,
};

struct bench_fetch {
	unsigned items;		/* BENCH_FI_* present (and well-formed) */
	uint64_t uid;
	unsigned flags;		/* BENCH_FLAG_* */
	uint64_t size;
	struct kstr body;	/* BODY[] bytes (view into the response) */
	struct kstr header;	/* BODY[HEADER] bytes */
	bool body_nil, header_nil;
	const char *error;	/* static reason when -EPROTO */
};

/* Parses the "(item value ...)" of "* n FETCH (...)" (rest of the
 * response). Items the bench does not know are skipped. ENVELOPE must be
 * a 10-element list with address lists or NIL where RFC 3501 says.
 * Returns 0, or -EPROTO with f->error set; f is filled in either case
 * with what parsed before the error. */
int bench_resp_parse_fetch(struct kstr rest, struct bench_fetch *f);

/* Parses "mailbox (NAME value ...)" of an untagged STATUS. Sets *mailbox_r
 * (raw bytes, quotes removed) and, for MESSAGES, UNSEEN and UIDNEXT, bit
 * 0/1/2 of *have_r with values in vals_r[0..2]. Returns 0 or -EPROTO. */
int bench_resp_parse_status(struct kstr rest, struct kstr *mailbox_r,
			    unsigned *have_r, uint64_t vals_r[3]);

/* Parses "(flags) delimiter mailbox" of an untagged LIST. Returns 0 with
 * the mailbox name (quotes removed, escapes kept) or -EPROTO. */
int bench_resp_parse_list(struct kstr rest, struct kstr *mailbox_r);

#endif
