#include "imapd/imap_parser.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "lib/util.h"

const struct imap_parser_limits imap_parser_limits_preauth = {
	.max_line = 8 * 1024,
	.max_literal = 4 * 1024,
	/* APPEND needs a login; a small bound also makes a pre-login
	 * client that announces a big non-synchronizing literal FATAL
	 * (4 * max_append) instead of keeping us skipping bytes. */
	.max_append = 4 * 1024,
	.max_depth = 4,
	.max_args = 32,
	.max_bad = 10,
};

const struct imap_parser_limits imap_parser_limits_default = {
	.max_line = 64 * 1024,
	.max_literal = 1024 * 1024,
	.max_append = 64 * 1024 * 1024,
	.max_depth = 32,
	.max_args = 100000,
	.max_bad = 10,
};

enum parse_state {
	PS_IDLE = 0,		/* between commands; empty lines are ignored */
	PS_IDLE_CR,		/* CR at the start of a line */
	PS_BARE_CR,		/* a line that began with CR not followed by LF */
	PS_TAG,
	PS_NAME_START,
	PS_NAME,
	PS_ARG_START,		/* after SP: an argument must follow */
	PS_LIST_FIRST,		/* after '(': an argument or ')' */
	PS_AFTER_ARG,		/* SP, ')' or the line end */
	PS_END_CR,		/* CR that must end the command */
	PS_ATOM,
	PS_ATOM_BRACKET,	/* inside [...] of an atom */
	PS_TILDE,		/* '~' at an argument start: literal8 or atom */
	PS_QUOTED,
	PS_QUOTED_ESC,
	PS_LIT_OPEN,		/* after '{': a digit must follow */
	PS_LIT_DIGITS,
	PS_LIT_PLUS,		/* after '+': '}' must follow */
	PS_LIT_CLOSE,		/* after '}': CRLF or LF must follow */
	PS_LIT_CR,
	PS_LIT_DATA,		/* the parser reads a literal's bytes */
	PS_STREAM_WAIT,		/* the caller reads an APPEND literal */
	PS_SKIP_LINE,		/* after BAD: up to the end of the line */
	PS_SKIP_LIT,		/* after BAD: a non-synchronizing literal */
	PS_FATAL,
};

/* Watches the raw tail of every command line, whatever the parser makes
 * of it, for a literal announcement "{n}" / "{n+}" right before the line
 * end. While a bad line is skipped this is what tells whether the client
 * will now send literal bytes that must not be taken for a command. */
enum tail_state {
	TAIL_NONE = 0,
	TAIL_DIGITS,		/* after '{' and zero or more digits */
	TAIL_PLUS,
	TAIL_CLOSE,
	TAIL_CLOSE_CR,
};

struct frame {
	struct imap_arg *items;
	size_t count, cap;
};

struct imap_parser {
	struct imap_parser_limits lim, next_lim;
	struct arena *arena;
	enum parse_state state;
	/* The previous command ended (DONE, BAD, refused): its memory goes
	 * at the start of the next feed. */
	bool need_reset;
	size_t line_len;

	/* The token being read (tag, name, atom, quoted); never longer
	 * than max_line because each of its bytes is a counted line byte. */
	uint8_t *tok;
	size_t tok_len, tok_cap;
	unsigned utf8_need;
	uint8_t utf8_lo, utf8_hi;

	/* The literal being announced or read. */
	uint64_t lit_size, lit_left;
	bool lit_sync, lit8;
	uint8_t *lit_data;
	uint64_t lit_total;	/* parser-read literal bytes of this command */

	enum tail_state tail;
	uint64_t tail_size;
	bool tail_digit, tail_sync;

	struct frame *frames;
	size_t frames_cap;
	unsigned depth;
	unsigned nargs;

	bool have_tag;
	struct kstr tag, name;
	bool is_append;
	struct imap_cmd cmd, partial;

	unsigned bad_count;
	const char *error;
};

/* ATOM-CHAR of RFC 3501: CHAR except atom-specials. */
static bool is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '{': case '%': case '*':
	case '"': case '\\': case ']':
		return false;
	default:
		return true;
	}
}

/* A tag is 1*<any ASTRING-CHAR except "+">. */
static bool is_tag_char(uint8_t c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

/* Inside an argument atom we also take list wildcards (LIST "" *),
 * sequence-set '*' and ']' (ASTRING-CHAR). */
static bool is_arg_atom_char(uint8_t c)
{
	return is_atom_char(c) || c == '*' || c == '%' || c == ']';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static uint64_t add_digit(uint64_t v, uint8_t c)
{
	uint64_t d = (uint64_t)(c - '0');
	if (v > (UINT64_MAX - d) / 10)
		return UINT64_MAX;
	return v * 10 + d;
}

/* A non-synchronizing literal this large is not worth skipping. */
static bool lit_absurd(const struct imap_parser *p, uint64_t size)
{
	uint64_t lim = p->lim.max_append > UINT64_MAX / 4 ?
		UINT64_MAX : p->lim.max_append * 4;
	return size > lim;
}

static void cmd_reset(struct imap_parser *p);

/* The command arena, created at first use so that an idle connection
 * (see imap_parser_trim) holds none. */
static struct arena *parser_arena(struct imap_parser *p)
{
	if (p->arena == NULL)
		p->arena = arena_create(4096);
	return p->arena;
}

void imap_parser_trim(struct imap_parser *p)
{
	if (p->state != PS_IDLE)
		return;
	cmd_reset(p);
	arena_destroy(&p->arena);
	free(p->tok);
	p->tok = NULL;
	p->tok_cap = 0;
	p->tok_len = 0;
}

struct imap_parser *imap_parser_create(const struct imap_parser_limits *lim)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	p->lim = *lim;
	p->next_lim = *lim;
	p->state = PS_IDLE;
	p->frames_cap = 0;
	xgrow((void **)&p->frames, &p->frames_cap, 1, sizeof(*p->frames));
	memset(p->frames, 0, p->frames_cap * sizeof(*p->frames));
	return p;
}

void imap_parser_destroy(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->frames_cap; i++)
		free(p->frames[i].items);
	free(p->frames);
	free(p->tok);
	arena_destroy(&p->arena);
	free(p);
	*pp = NULL;
}

void imap_parser_set_limits(struct imap_parser *p,
			    const struct imap_parser_limits *lim)
{
	p->next_lim = *lim;
}

/* Frees what the last command held. Large scratch arrays are given back
 * so one huge command does not pin memory for the connection's life. */
static void cmd_reset(struct imap_parser *p)
{
	if (p->arena != NULL)
		arena_reset(p->arena);
	for (size_t i = 0; i < p->frames_cap; i++) {
		struct frame *f = &p->frames[i];
		f->count = 0;
		if (f->cap > 1024) {
			free(f->items);
			f->items = NULL;
			f->cap = 0;
		}
	}
	if (p->tok_cap > 16 * 1024) {
		free(p->tok);
		p->tok = NULL;
		p->tok_cap = 0;
	}
	p->tok_len = 0;
	p->depth = 0;
	p->nargs = 0;
	p->lit_total = 0;
	p->lit_data = NULL;
	p->have_tag = false;
	p->tag = KSTR_LIT("*");
	p->name = kstr_make(NULL, 0);
	p->is_append = false;
	p->need_reset = false;
}

void imap_parser_reset(struct imap_parser *p)
{
	if (p->state == PS_FATAL)
		return;
	cmd_reset(p);
	p->state = PS_IDLE;
	p->tail = TAIL_NONE;
	p->line_len = 0;
}

static void begin_command(struct imap_parser *p)
{
	if (p->need_reset)
		cmd_reset(p);
	p->lim = p->next_lim;
	p->line_len = 0;
	p->tail = TAIL_NONE;
	p->tok_len = 0;
	p->state = PS_TAG;
}

static void tok_push(struct imap_parser *p, uint8_t c)
{
	if (p->tok_len == p->tok_cap) {
		size_t ncap = p->tok_cap == 0 ? 64 : p->tok_cap * 2;
		p->tok = xrealloc(p->tok, ncap);
		p->tok_cap = ncap;
	}
	p->tok[p->tok_len++] = c;
}

static struct kstr tok_take(struct imap_parser *p)
{
	struct kstr s = arena_kstr(parser_arena(p), kstr_make(p->tok, p->tok_len));
	p->tok_len = 0;
	return s;
}

static struct imap_arg *arg_push(struct imap_parser *p)
{
	struct frame *f = &p->frames[p->depth];
	xgrow((void **)&f->items, &f->cap, f->count + 1, sizeof(*f->items));
	struct imap_arg *a = &f->items[f->count++];
	memset(a, 0, sizeof(*a));
	return a;
}

static void tail_update(struct imap_parser *p, uint8_t c)
{
	switch (p->tail) {
	case TAIL_DIGITS:
		if (is_digit(c)) {
			p->tail_size = add_digit(p->tail_size, c);
			p->tail_digit = true;
			return;
		}
		if (p->tail_digit && c == '+') {
			p->tail = TAIL_PLUS;
			return;
		}
		if (p->tail_digit && c == '}') {
			p->tail = TAIL_CLOSE;
			p->tail_sync = true;
			return;
		}
		break;
	case TAIL_PLUS:
		if (c == '}') {
			p->tail = TAIL_CLOSE;
			p->tail_sync = false;
			return;
		}
		break;
	case TAIL_CLOSE:
		if (c == '\r') {
			p->tail = TAIL_CLOSE_CR;
			return;
		}
		break;
	default:
		break;
	}
	if (c == '{') {
		p->tail = TAIL_DIGITS;
		p->tail_size = 0;
		p->tail_digit = false;
	} else {
		p->tail = TAIL_NONE;
	}
}

static enum imap_parse_rc fatal(struct imap_parser *p, const char *why)
{
	p->error = why;
	p->state = PS_FATAL;
	return IMAP_PARSE_FATAL;
}

/* A line of a command being skipped has ended (its LF was consumed):
 * when it announced a non-synchronizing literal, the client sends the
 * bytes now and they are skipped too; a synchronizing one is never sent
 * because the client got no "+". */
static enum imap_parse_rc skip_line_end(struct imap_parser *p)
{
	bool lit = p->tail == TAIL_CLOSE || p->tail == TAIL_CLOSE_CR;
	p->tail = TAIL_NONE;
	if (!lit || p->tail_sync) {
		p->state = PS_IDLE;
		return IMAP_PARSE_MORE;
	}
	if (lit_absurd(p, p->tail_size))
		return fatal(p, "Literal far too large to skip");
	p->lit_left = p->tail_size;
	p->state = p->lit_left > 0 ? PS_SKIP_LIT : PS_SKIP_LINE;
	return IMAP_PARSE_MORE;
}

/* The command is bad; c is the byte that showed it (already counted and
 * seen by the tail watcher). Returns BAD, or FATAL. */
static enum imap_parse_rc bad(struct imap_parser *p, const char *why,
			      uint8_t c)
{
	p->error = why;
	p->need_reset = true;
	p->bad_count++;
	if (p->lim.max_bad > 0 && p->bad_count >= p->lim.max_bad)
		return fatal(p, "Too many invalid commands");
	if (c == '\n') {
		if (skip_line_end(p) == IMAP_PARSE_FATAL)
			return IMAP_PARSE_FATAL;
	} else {
		p->state = PS_SKIP_LINE;
	}
	return IMAP_PARSE_BAD;
}

static enum imap_parse_rc finish_command(struct imap_parser *p,
					 struct imap_cmd **cmd_r)
{
	struct frame *f = &p->frames[0];
	struct imap_cmd *cmd = &p->cmd;

	cmd->tag = p->tag;
	cmd->name = p->name;
	cmd->nargs = f->count;
	cmd->args = arena_alloc(parser_arena(p), (f->count + 1) * sizeof(*cmd->args));
	if (f->count > 0)
		memcpy(cmd->args, f->items, f->count * sizeof(*cmd->args));
	*cmd_r = cmd;
	p->bad_count = 0;
	p->need_reset = true;
	p->state = PS_IDLE;
	return IMAP_PARSE_DONE;
}

/* The line end after a complete argument or the command name. */
static enum imap_parse_rc end_of_line(struct imap_parser *p, uint8_t c,
				      struct imap_cmd **cmd_r)
{
	if (p->depth > 0)
		return bad(p, "Missing ')'", c);
	return finish_command(p, cmd_r);
}

/* Counts an argument before anything is allocated for it. */
static bool arg_begin(struct imap_parser *p)
{
	if (p->nargs >= p->lim.max_args)
		return false;
	p->nargs++;
	return true;
}

static void list_close(struct imap_parser *p)
{
	struct frame *f = &p->frames[p->depth];
	struct imap_arg *items = arena_alloc(parser_arena(p),
					     (f->count + 1) * sizeof(*items));
	size_t n = f->count;

	if (n > 0)
		memcpy(items, f->items, n * sizeof(*items));
	f->count = 0;
	p->depth--;
	struct imap_arg *a = arg_push(p);
	a->type = IMAP_ARG_LIST;
	a->list = items;
	a->list_count = n;
}

static void literal_finish(struct imap_parser *p)
{
	struct imap_arg *a = arg_push(p);
	a->type = IMAP_ARG_LITERAL;
	a->literal8 = p->lit8;
	a->str = kstr_make(p->lit_data, (size_t)p->lit_size);
	p->lit_data = NULL;
	p->state = PS_AFTER_ARG;
}

/* A literal announcement is complete (its LF consumed). */
static enum imap_parse_rc literal_begin(struct imap_parser *p, uint64_t *len_r)
{
	uint64_t size = p->lit_size;

	p->tail = TAIL_NONE;
	if (p->is_append && p->depth == 0 && p->frames[0].count >= 1) {
		if (size > p->lim.max_append) {
			/* bad() skips the bytes of a non-synchronizing one,
			 * from what the tail watcher saw. */
			p->tail = TAIL_CLOSE;
			p->tail_size = size;
			p->tail_sync = p->lit_sync;
			return bad(p, "[TOOBIG] Message too large", '\n');
		}
		p->state = PS_STREAM_WAIT;
		*len_r = size;
		return IMAP_PARSE_LITERAL;
	}
	uint64_t total_max = p->lim.max_literal > UINT64_MAX / 4 ?
		UINT64_MAX : p->lim.max_literal * 4;
	if (size > p->lim.max_literal || size > total_max - p->lit_total) {
		p->tail = TAIL_CLOSE;
		p->tail_size = size;
		p->tail_sync = p->lit_sync;
		return bad(p, "[TOOBIG] Literal too large", '\n');
	}
	p->lit_total += size;
	p->lit_data = arena_alloc(parser_arena(p), (size_t)size + 1);
	p->lit_data[size] = '\0';
	p->lit_left = size;
	if (size == 0)
		literal_finish(p);
	else
		p->state = PS_LIT_DATA;
	return p->lit_sync ? IMAP_PARSE_CONT : IMAP_PARSE_MORE;
}

/* The start of an argument (after SP, or after '(' when list_first). */
static enum imap_parse_rc arg_start(struct imap_parser *p, uint8_t c,
				    bool list_first)
{
	if (c == ')' && list_first) {
		list_close(p);
		p->state = PS_AFTER_ARG;
		return IMAP_PARSE_MORE;
	}
	if (c == '(' || c == '"' || c == '{' || c == '~' || c == '\\' ||
	    is_arg_atom_char(c)) {
		if (!arg_begin(p))
			return bad(p, "[LIMIT] Too many arguments", c);
	}
	switch (c) {
	case '(':
		if (p->depth >= p->lim.max_depth)
			return bad(p, "[LIMIT] Lists nested too deeply", c);
		if (p->depth + 1 >= p->frames_cap) {
			size_t old = p->frames_cap;
			xgrow((void **)&p->frames, &p->frames_cap,
			      p->depth + 2, sizeof(*p->frames));
			memset(p->frames + old, 0,
			       (p->frames_cap - old) * sizeof(*p->frames));
		}
		p->depth++;
		p->frames[p->depth].count = 0;
		p->state = PS_LIST_FIRST;
		return IMAP_PARSE_MORE;
	case '"':
		p->tok_len = 0;
		p->utf8_need = 0;
		p->state = PS_QUOTED;
		return IMAP_PARSE_MORE;
	case '{':
		p->lit8 = false;
		p->state = PS_LIT_OPEN;
		return IMAP_PARSE_MORE;
	case '~':
		p->tok_len = 0;
		tok_push(p, c);
		p->state = PS_TILDE;
		return IMAP_PARSE_MORE;
	default:
		break;
	}
	if (c == '\\' || is_arg_atom_char(c)) {
		p->tok_len = 0;
		tok_push(p, c);
		p->state = c == '[' ? PS_ATOM_BRACKET : PS_ATOM;
		return IMAP_PARSE_MORE;
	}
	if ((c == '\r' || c == '\n') && list_first)
		return bad(p, "Missing ')'", c);
	if (c == '\r' || c == '\n' || c == ' ')
		return bad(p, "Missing argument", c);
	if (c == ')')
		return bad(p, "Unexpected ')'", c);
	return bad(p, "Invalid character", c);
}

static enum imap_parse_rc after_arg(struct imap_parser *p, uint8_t c,
				    struct imap_cmd **cmd_r)
{
	switch (c) {
	case ' ':
		p->state = PS_ARG_START;
		return IMAP_PARSE_MORE;
	case ')':
		if (p->depth == 0)
			return bad(p, "Unexpected ')'", c);
		list_close(p);
		p->state = PS_AFTER_ARG;
		return IMAP_PARSE_MORE;
	case '\r':
		p->state = PS_END_CR;
		return IMAP_PARSE_MORE;
	case '\n':
		return end_of_line(p, c, cmd_r);
	default:
		return bad(p, "Expected space, ')' or end of line", c);
	}
}

static void atom_finish(struct imap_parser *p)
{
	struct imap_arg *a = arg_push(p);
	a->type = IMAP_ARG_ATOM;
	a->str = tok_take(p);
}

/* Checks one byte of a quoted string against UTF-8 (RFC 3629): no
 * overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_step(struct imap_parser *p, uint8_t c)
{
	if (p->utf8_need > 0) {
		if (c < p->utf8_lo || c > p->utf8_hi)
			return false;
		p->utf8_need--;
		p->utf8_lo = 0x80;
		p->utf8_hi = 0xbf;
		return true;
	}
	p->utf8_lo = 0x80;
	p->utf8_hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		p->utf8_need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		p->utf8_need = 2;
		if (c == 0xe0)
			p->utf8_lo = 0xa0;
		else if (c == 0xed)
			p->utf8_hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		p->utf8_need = 3;
		if (c == 0xf0)
			p->utf8_lo = 0x90;
		else if (c == 0xf4)
			p->utf8_hi = 0x8f;
	} else {
		return false;
	}
	return true;
}

/* One byte of a command line (not of a literal) in a parsing state. */
static enum imap_parse_rc parse_byte(struct imap_parser *p, uint8_t c,
				     struct imap_cmd **cmd_r, uint64_t *len_r)
{
	switch (p->state) {
	case PS_BARE_CR:
		return bad(p, "CR not followed by LF", c);
	case PS_TAG:
		if (is_tag_char(c)) {
			tok_push(p, c);
			return IMAP_PARSE_MORE;
		}
		if (c == ' ' && p->tok_len > 0) {
			p->tag = tok_take(p);
			p->have_tag = true;
			p->state = PS_NAME_START;
			return IMAP_PARSE_MORE;
		}
		if (p->tok_len > 0 && (c == '\r' || c == '\n')) {
			p->tag = tok_take(p);
			p->have_tag = true;
			return bad(p, "Missing command name", c);
		}
		return bad(p, "Invalid tag", c);
	case PS_NAME_START:
		if (is_atom_char(c)) {
			tok_push(p, c);
			p->state = PS_NAME;
			return IMAP_PARSE_MORE;
		}
		return bad(p, "Missing command name", c);
	case PS_NAME:
		if (is_atom_char(c)) {
			tok_push(p, c);
			return IMAP_PARSE_MORE;
		}
		if (c != ' ' && c != '\r' && c != '\n')
			return bad(p, "Invalid command name", c);
		p->name = tok_take(p);
		p->is_append = kstr_eq_ci(p->name, "APPEND");
		if (c == ' ') {
			p->state = PS_ARG_START;
			return IMAP_PARSE_MORE;
		}
		if (c == '\r') {
			p->state = PS_END_CR;
			return IMAP_PARSE_MORE;
		}
		return end_of_line(p, c, cmd_r);
	case PS_ARG_START:
		return arg_start(p, c, false);
	case PS_LIST_FIRST:
		return arg_start(p, c, true);
	case PS_AFTER_ARG:
		return after_arg(p, c, cmd_r);
	case PS_END_CR:
		if (c == '\n')
			return end_of_line(p, c, cmd_r);
		return bad(p, "CR not followed by LF", c);
	case PS_TILDE:
		if (c == '{') {
			p->tok_len = 0;
			p->lit8 = true;
			p->state = PS_LIT_OPEN;
			return IMAP_PARSE_MORE;
		}
		/* The '~' began an atom. */
		p->state = PS_ATOM;
		return parse_byte(p, c, cmd_r, len_r);
	case PS_ATOM:
		if (is_arg_atom_char(c)) {
			tok_push(p, c);
			if (c == '[')
				p->state = PS_ATOM_BRACKET;
			return IMAP_PARSE_MORE;
		}
		if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
			atom_finish(p);
			return after_arg(p, c, cmd_r);
		}
		return bad(p, "Invalid character in atom", c);
	case PS_ATOM_BRACKET:
		if (c == ']') {
			tok_push(p, c);
			p->state = PS_ATOM;
			return IMAP_PARSE_MORE;
		}
		if (c == '\r' || c == '\n')
			return bad(p, "Missing ']'", c);
		if (c < 0x20 || c >= 0x7f)
			return bad(p, "Invalid character in atom", c);
		tok_push(p, c);
		return IMAP_PARSE_MORE;
	case PS_QUOTED:
		if (p->utf8_need > 0 || c >= 0x80) {
			if (!utf8_step(p, c))
				return bad(p, "Invalid UTF-8 in quoted string",
					   c);
			tok_push(p, c);
			return IMAP_PARSE_MORE;
		}
		if (c == '"') {
			struct imap_arg *a = arg_push(p);
			a->type = IMAP_ARG_STRING;
			a->str = tok_take(p);
			p->state = PS_AFTER_ARG;
			return IMAP_PARSE_MORE;
		}
		if (c == '\\') {
			p->state = PS_QUOTED_ESC;
			return IMAP_PARSE_MORE;
		}
		if (c == '\r' || c == '\n')
			return bad(p, "Unterminated quoted string", c);
		if (c == '\0')
			return bad(p, "NUL in quoted string", c);
		tok_push(p, c);
		return IMAP_PARSE_MORE;
	case PS_QUOTED_ESC:
		if (c == '"' || c == '\\') {
			tok_push(p, c);
			p->state = PS_QUOTED;
			return IMAP_PARSE_MORE;
		}
		return bad(p, "Invalid escape in quoted string", c);
	case PS_LIT_OPEN:
		if (is_digit(c)) {
			p->lit_size = (uint64_t)(c - '0');
			p->state = PS_LIT_DIGITS;
			return IMAP_PARSE_MORE;
		}
		return bad(p, "Invalid literal", c);
	case PS_LIT_DIGITS:
		if (is_digit(c)) {
			p->lit_size = add_digit(p->lit_size, c);
			return IMAP_PARSE_MORE;
		}
		if (c == '+') {
			p->state = PS_LIT_PLUS;
			return IMAP_PARSE_MORE;
		}
		if (c == '}') {
			p->lit_sync = true;
			p->state = PS_LIT_CLOSE;
			return IMAP_PARSE_MORE;
		}
		return bad(p, "Invalid literal", c);
	case PS_LIT_PLUS:
		if (c == '}') {
			p->lit_sync = false;
			p->state = PS_LIT_CLOSE;
			return IMAP_PARSE_MORE;
		}
		return bad(p, "Invalid literal", c);
	case PS_LIT_CLOSE:
		if (c == '\r') {
			p->state = PS_LIT_CR;
			return IMAP_PARSE_MORE;
		}
		if (c == '\n')
			return literal_begin(p, len_r);
		return bad(p, "Literal not followed by CRLF", c);
	case PS_LIT_CR:
		if (c == '\n')
			return literal_begin(p, len_r);
		return bad(p, "Literal not followed by CRLF", c);
	default:
		break;
	}
	/* Unreachable: the other states never see a line byte here. */
	abort();
}

enum imap_parse_rc imap_parser_feed(struct imap_parser *p, const uint8_t *data,
				    size_t len, size_t *consumed_r,
				    struct imap_cmd **cmd_r, uint64_t *len_r)
{
	enum imap_parse_rc rc = IMAP_PARSE_MORE;
	size_t i = 0;

	*cmd_r = NULL;
	*len_r = 0;
	/* The caller must call literal_done() or literal_refuse() first. */
	assert(p->state != PS_STREAM_WAIT);
	if (p->state == PS_FATAL) {
		*consumed_r = 0;
		return IMAP_PARSE_FATAL;
	}
	if (p->need_reset && p->state == PS_IDLE)
		cmd_reset(p);

	while (i < len && rc == IMAP_PARSE_MORE) {
		if (p->state == PS_LIT_DATA) {
			size_t n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			const uint8_t *nul = p->lit8 ? NULL :
				memchr(data + i, '\0', n);
			if (nul != NULL) {
				/* RFC 3501 literals are CHAR8 (%x01-ff). */
				size_t k = (size_t)(nul - (data + i)) + 1;
				i += k;
				p->lit_left -= k;
				rc = bad(p, "NUL in literal", 0);
				if (rc == IMAP_PARSE_BAD) {
					p->tail = TAIL_NONE;
					p->state = p->lit_left > 0 ?
						PS_SKIP_LIT : PS_SKIP_LINE;
				}
				break;
			}
			memcpy(p->lit_data + (p->lit_size - p->lit_left),
			       data + i, n);
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				literal_finish(p);
			continue;
		}
		if (p->state == PS_SKIP_LIT) {
			size_t n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				p->state = PS_SKIP_LINE;
			continue;
		}

		uint8_t c = data[i++];
		if (p->state == PS_IDLE) {
			if (c == '\n')
				continue;
			if (c == '\r') {
				p->state = PS_IDLE_CR;
				continue;
			}
			begin_command(p);
		} else if (p->state == PS_IDLE_CR) {
			if (c == '\n') {
				p->state = PS_IDLE;
				continue;
			}
			begin_command(p);
			p->state = PS_BARE_CR;
			p->line_len = 1;
		}

		p->line_len++;
		if (c != '\n')
			tail_update(p, c);
		if (p->state == PS_SKIP_LINE) {
			if (p->line_len / 4 > p->lim.max_line) {
				rc = fatal(p, "Command line far too long");
				break;
			}
			if (c == '\n')
				rc = skip_line_end(p);
			continue;
		}
		if (p->line_len > p->lim.max_line) {
			rc = bad(p, "[TOOBIG] Command line too long", c);
			break;
		}
		rc = parse_byte(p, c, cmd_r, len_r);
	}
	*consumed_r = i;
	return rc;
}

bool imap_parser_literal_sync(const struct imap_parser *p)
{
	return p->lit_sync;
}

void imap_parser_literal_done(struct imap_parser *p, void *handle)
{
	assert(p->state == PS_STREAM_WAIT);
	struct imap_arg *a = arg_push(p);
	a->type = IMAP_ARG_STREAMED;
	a->literal8 = p->lit8;
	a->stream_len = p->lit_size;
	a->stream_handle = handle;
	p->tail = TAIL_NONE;
	p->state = PS_AFTER_ARG;
}

void imap_parser_literal_refuse(struct imap_parser *p)
{
	assert(p->state == PS_STREAM_WAIT);
	p->need_reset = true;
	p->error = "Literal refused";
	p->tail = TAIL_NONE;
	if (p->lit_sync) {
		/* Without "+" the client sends neither the bytes nor the
		 * rest of the command. */
		p->state = PS_IDLE;
	} else {
		p->lit_left = p->lit_size;
		p->state = p->lit_left > 0 ? PS_SKIP_LIT : PS_SKIP_LINE;
	}
}

const char *imap_parser_error(const struct imap_parser *p)
{
	return p->error != NULL ? p->error : "";
}

struct kstr imap_parser_bad_tag(const struct imap_parser *p)
{
	return p->have_tag ? p->tag : KSTR_LIT("*");
}

const struct imap_cmd *imap_parser_partial(struct imap_parser *p)
{
	struct frame *f = &p->frames[0];

	p->partial.tag = imap_parser_bad_tag(p);
	p->partial.name = p->name;
	if (p->state == PS_STREAM_WAIT) {
		p->partial.args = f->items;
		p->partial.nargs = f->count;
	} else {
		p->partial.args = NULL;
		p->partial.nargs = 0;
	}
	return &p->partial;
}

size_t imap_parser_mem_used(const struct imap_parser *p)
{
	size_t n = (p->arena != NULL ? arena_used(p->arena) : 0) + p->tok_len;
	for (size_t i = 0; i <= p->depth && i < p->frames_cap; i++)
		n += p->frames[i].count * sizeof(struct imap_arg);
	return n;
}
