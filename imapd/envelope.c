#include "imapd/envelope.h"

#include <string.h>

#include "lib/errors.h"

struct ecur {
	const uint8_t *p;
	size_t len, pos;
	struct arena *a;
};

static int peek(const struct ecur *c)
{
	return c->pos < c->len ? c->p[c->pos] : -1;
}

/* The writer puts exactly one SP between items; more, or none before a
 * parenthesis, is accepted so that hand-written or older records
 * parse too. */
static void skip_sp(struct ecur *c)
{
	while (c->pos < c->len && c->p[c->pos] == ' ')
		c->pos++;
}

static bool expect(struct ecur *c, uint8_t ch)
{
	skip_sp(c);
	if (peek(c) != ch)
		return false;
	c->pos++;
	return true;
}

static bool parse_quoted(struct ecur *c, struct kstr *s_r)
{
	size_t start = ++c->pos, esc = 0;

	while (c->pos < c->len && c->p[c->pos] != '"') {
		if (c->p[c->pos] == '\\') {
			if (c->pos + 1 >= c->len)
				return false;
			esc++;
			c->pos++;
		}
		c->pos++;
	}
	if (c->pos >= c->len)
		return false;
	size_t end = c->pos++;
	if (esc == 0) {
		*s_r = kstr_make(c->p + start, end - start);
		return true;
	}
	uint8_t *d = arena_alloc(c->a, end - start - esc + 1);
	size_t n = 0;
	for (size_t i = start; i < end; i++) {
		if (c->p[i] == '\\')
			i++;
		d[n++] = c->p[i];
	}
	d[n] = '\0';
	*s_r = kstr_make(d, n);
	return true;
}

static bool parse_literal(struct ecur *c, struct kstr *s_r)
{
	uint64_t n = 0;
	size_t digits = 0;

	c->pos++;
	while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(c->p[c->pos] - '0');
		c->pos++;
		digits++;
	}
	if (digits == 0 || c->len - c->pos < 3 || c->p[c->pos] != '}' ||
	    c->p[c->pos + 1] != '\r' || c->p[c->pos + 2] != '\n')
		return false;
	c->pos += 3;
	if (n > c->len - c->pos)
		return false;
	*s_r = kstr_make(c->p + c->pos, (size_t)n);
	c->pos += (size_t)n;
	return true;
}

/* nstring; NIL gives p == NULL. */
static bool parse_nstring(struct ecur *c, struct kstr *s_r)
{
	skip_sp(c);
	*s_r = kstr_make(NULL, 0);
	switch (peek(c)) {
	case '"':
		return parse_quoted(c, s_r);
	case '{':
		return parse_literal(c, s_r);
	case 'N':
	case 'n':
		if (c->len - c->pos >= 3 &&
		    (c->p[c->pos + 1] | 0x20) == 'i' &&
		    (c->p[c->pos + 2] | 0x20) == 'l') {
			c->pos += 3;
			return true;
		}
		return false;
	default:
		return false;
	}
}

static bool parse_address(struct ecur *c, struct envelope_addr *ad)
{
	return expect(c, '(') && parse_nstring(c, &ad->name) &&
	       parse_nstring(c, &ad->adl) && parse_nstring(c, &ad->mailbox) &&
	       parse_nstring(c, &ad->host) && expect(c, ')');
}

/* NIL or "(" 1*address ")"; keeps the first address and counts all. */
static bool parse_addr_list(struct ecur *c, struct envelope_addr *first_r,
			    size_t *n_r)
{
	struct kstr nil;

	memset(first_r, 0, sizeof(*first_r));
	*n_r = 0;
	skip_sp(c);
	if (peek(c) != '(')
		return parse_nstring(c, &nil) && nil.p == NULL;
	c->pos++;
	for (;;) {
		struct envelope_addr ad;
		skip_sp(c);
		if (peek(c) == ')') {
			/* "()" is not IMAP, but means no address. */
			c->pos++;
			return true;
		}
		memset(&ad, 0, sizeof(ad));
		if (!parse_address(c, &ad))
			return false;
		if (*n_r == 0)
			*first_r = ad;
		(*n_r)++;
	}
}

int envelope_parse(struct arena *a, struct kstr text, struct envelope *env_r)
{
	struct ecur c = { text.p, text.len, 0, a };
	struct envelope *e = env_r;
	bool ok;

	memset(e, 0, sizeof(*e));
	if (text.p == NULL)
		return KURA_ECORRUPT;
	ok = expect(&c, '(') && parse_nstring(&c, &e->date) &&
	     parse_nstring(&c, &e->subject);
	for (int i = 0; ok && i < ENVELOPE_NLISTS; i++)
		ok = parse_addr_list(&c, &e->first[i], &e->naddrs[i]);
	ok = ok && parse_nstring(&c, &e->in_reply_to) &&
	     parse_nstring(&c, &e->message_id) && expect(&c, ')');
	if (!ok) {
		memset(e, 0, sizeof(*e));
		return KURA_ECORRUPT;
	}
	return 0;
}
