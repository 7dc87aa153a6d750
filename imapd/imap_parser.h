/* imap_parser: the I/O-free, resumable IMAP command parser (STYLE.md).
 *
 * The connection feeds whatever bytes it has; the parser consumes them
 * one state at a time, never rescans a byte, and says what to do next.
 * A complete command is a tag, a name and a tree of arguments, all
 * allocated in the parser's arena and valid until the next
 * imap_parser_feed() after IMAP_PARSE_DONE, or imap_parser_reset().
 *
 * Tokens: atoms, quoted strings (escapes removed), literals ({n}, {n+},
 * ~{n} for literal8), NIL (an atom the handlers recognise), and
 * parenthesised lists. An atom that meets '[' continues to the matching
 * ']' whatever it holds (spaces, parentheses, quotes), then goes on as an
 * atom: "BODY[HEADER.FIELDS (A B)]<0.10>" is one atom; likewise '<' ...
 * '>' after ']'. Atoms may start with '\' (flags) and hold '*', ':' and
 * ',' (sequence sets).
 *
 * Literals: a synchronizing literal whose size is within limits makes
 * feed return IMAP_PARSE_CONT once (the caller sends "+ ..."); the parser
 * then reads its bytes itself. Limits are checked before CONT. A literal
 * that is the message of APPEND (a top-level argument after the mailbox
 * name of a command named APPEND) is not read by the parser: feed returns
 * IMAP_PARSE_LITERAL with its size, the caller sends "+" when
 * imap_parser_literal_sync() says so, reads exactly that many bytes
 * itself and calls imap_parser_literal_done() before feeding again; the
 * argument then has type IMAP_ARG_STREAMED and its value is the caller's
 * `handle`.
 *
 * Errors: on bad syntax or a passed limit, feed returns IMAP_PARSE_BAD
 * with a reason; the parser skips the rest of the line (and the bytes of
 * a non-synchronizing literal announced at its end, which are never
 * parsed as a command) and then parses the next command. The tag of the
 * bad command (if one was read) is in imap_parser_bad_tag(). After
 * limits.max_bad consecutive BADs, or a line/literal too large to skip
 * safely, feed returns IMAP_PARSE_FATAL.
 *
 * Details of the contract:
 * - Lines end in CRLF or a bare LF. Empty lines between commands are
 *   ignored. Arguments are separated by exactly one SP (RFC 3501).
 * - Tag: 1*ASTRING-CHAR except '+'. Name: 1*ATOM-CHAR.
 * - Quoted strings take the escapes \" and \\ only; CR, LF, NUL and
 *   bytes that are not valid UTF-8 in them are BAD (RFC 6855 lets UTF-8
 *   through). Literals ({n}) may not hold NUL; literal8 (~{n}) may.
 * - Literals read by the parser: each at most max_literal bytes, all of
 *   one command together at most 4 * max_literal.
 * - A non-synchronizing literal over its limit is BAD and skipped, but
 *   FATAL when larger than 4 * max_append; a bad line whose skipped part
 *   passes 4 * max_line is FATAL too.
 * - The max_bad-th consecutive BAD is returned as FATAL (0: no limit);
 *   DONE resets the count, empty lines and refused literals leave it.
 * - imap_parser_error() text is meant to follow "tag BAD "; it starts
 *   with a response code where one applies ("[TOOBIG] ...", "[LIMIT]
 *   ..."). */
#ifndef KURA_IMAP_PARSER_H
#define KURA_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/kstr.h"

enum imap_parse_rc {
	IMAP_PARSE_DONE = 0,	/* *cmd_r is a complete command */
	IMAP_PARSE_MORE,	/* all input consumed, feed more bytes */
	IMAP_PARSE_CONT,	/* synchronizing literal accepted: send "+ " */
	IMAP_PARSE_LITERAL,	/* APPEND: stream the next *len_r bytes */
	IMAP_PARSE_BAD,		/* reply tagged BAD; parser resynchronizes */
	IMAP_PARSE_FATAL,	/* reply BYE and close */
};

enum imap_arg_type {
	IMAP_ARG_ATOM = 0,
	IMAP_ARG_STRING,	/* quoted string, unescaped */
	IMAP_ARG_LITERAL,	/* literal read by the parser */
	IMAP_ARG_LIST,		/* ( ... ) */
	IMAP_ARG_STREAMED,	/* APPEND literal read by the caller */
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal8;		/* ~{n}: may hold NUL */
	/* ATOM, STRING, LITERAL: the bytes (NUL-terminated in the arena
	 * after len, for convenience; may contain NUL for literals). */
	struct kstr str;
	/* LIST: the elements. */
	struct imap_arg *list;
	size_t list_count;
	/* STREAMED: literal size and the caller's handle. */
	uint64_t stream_len;
	void *stream_handle;
};

struct imap_cmd {
	struct kstr tag;
	struct kstr name;	/* as sent; compare case-insensitively */
	struct imap_arg *args;
	size_t nargs;
};

struct imap_parser_limits {
	size_t max_line;	/* bytes of a command outside its literals */
	uint64_t max_literal;	/* a literal the parser reads itself */
	uint64_t max_append;	/* a streamed APPEND literal */
	unsigned max_depth;	/* list nesting */
	unsigned max_args;	/* arguments in a command, all levels */
	unsigned max_bad;	/* consecutive BADs before FATAL */
};

/* Limits used before authentication (line 8 KiB, literal 4 KiB, APPEND
 * literal 4 KiB, depth 4, 32 arguments, 10 BADs) and after it (line
 * 64 KiB, literal 1 MiB, APPEND literal 64 MiB, depth 32, 100000
 * arguments, 10 BADs). */
extern const struct imap_parser_limits imap_parser_limits_preauth;
extern const struct imap_parser_limits imap_parser_limits_default;

struct imap_parser;

struct imap_parser *imap_parser_create(const struct imap_parser_limits *lim);
void imap_parser_destroy(struct imap_parser **p);
/* Switches limits (e.g. after LOGIN); takes effect at the next command. */
void imap_parser_set_limits(struct imap_parser *p,
			    const struct imap_parser_limits *lim);

/* Consumes bytes from data; *consumed_r tells how many (possibly fewer
 * than len when a command ends or an event needs the caller). Returns
 * what happened:
 *   DONE: *cmd_r set; the command's memory lives until the next feed.
 *   CONT: send a continuation request, then feed again.
 *   LITERAL: *len_r set; see above.
 *   BAD: imap_parser_error() says why, imap_parser_bad_tag() the tag.
 *   FATAL: imap_parser_error() says why. */
enum imap_parse_rc imap_parser_feed(struct imap_parser *p, const uint8_t *data,
				    size_t len, size_t *consumed_r,
				    struct imap_cmd **cmd_r, uint64_t *len_r);
/* After IMAP_PARSE_LITERAL: whether the client waits for "+" (a
 * synchronizing literal) before sending the bytes. */
bool imap_parser_literal_sync(const struct imap_parser *p);
/* After the caller has read the streamed literal's bytes. */
void imap_parser_literal_done(struct imap_parser *p, void *handle);
/* After IMAP_PARSE_LITERAL, when the caller refuses the literal (too
 * big, over quota): the command is abandoned like a BAD one; for a
 * non-synchronizing literal the parser skips its bytes (and the rest of
 * the command). The caller answers with the tag from
 * imap_parser_bad_tag(). A refusal does not count toward max_bad. */
void imap_parser_literal_refuse(struct imap_parser *p);
/* After IMAP_PARSE_LITERAL: the command as read so far (tag, name and
 * the top-level arguments before the literal: the mailbox, flags, date,
 * earlier messages of a MULTIAPPEND), so that the caller can check them
 * before accepting the literal. Valid until literal_done(),
 * literal_refuse() or the next feed. At other times only tag and name
 * are set (empty when not read yet). */
const struct imap_cmd *imap_parser_partial(struct imap_parser *p);
/* Reason for the last BAD/FATAL; static text. */
const char *imap_parser_error(const struct imap_parser *p);
/* Tag of the command that got BAD ("*" when none could be read), or of
 * the command whose literal was refused; valid until the next feed. */
struct kstr imap_parser_bad_tag(const struct imap_parser *p);
/* Drops any partial command. */
void imap_parser_reset(struct imap_parser *p);
/* Between commands: frees the parser's per-command memory (it is
 * allocated again at the next command). For idle connections. */
void imap_parser_trim(struct imap_parser *p);
/* Bytes the parser holds for the current command (for budgets). */
size_t imap_parser_mem_used(const struct imap_parser *p);

#endif
