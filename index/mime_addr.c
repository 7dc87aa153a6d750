/* mime_addr: IMAP strings, RFC 5322 address lists into ENVELOPE address
 * structures, and RFC 5322 dates. */
#include "index/mime.h"

#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* NULL + 0 (an empty buf's view) is undefined behaviour UBSan reports. */
static struct kstr bview(const struct buf *b)
{
	if (b->data == NULL)
		return kstr_make("", 0);
	return kstr_make(b->data + b->pos, b->len - b->pos);
}

bool mime_imap_string(struct buf *out, const uint8_t *p, size_t len)
{
	size_t nul = 0, esc = 0;
	bool literal = false;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		if (c == 0)
			nul++;
		else if (c >= 0x80 || c == '\r' || c == '\n')
			literal = true;
		else if (c == '"' || c == '\\')
			esc++;
	}
	if (literal) {
		if (!buf_printf(out, "{%zu}\r\n", len - nul))
			return false;
		if (nul == 0)
			return buf_append(out, p, len);
		uint8_t *d = buf_reserve(out, len - nul);
		if (d == NULL)
			return false;
		size_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (p[i] != 0)
				d[n++] = p[i];
		}
		buf_commit(out, n);
		return true;
	}
	uint8_t *d = buf_reserve(out, len - nul + esc + 2);
	if (d == NULL)
		return false;
	size_t n = 0;
	d[n++] = '"';
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		if (c == 0)
			continue;
		if (c == '"' || c == '\\')
			d[n++] = '\\';
		d[n++] = c;
	}
	d[n++] = '"';
	buf_commit(out, n);
	return true;
}

/* The address parser: a cursor over the raw header value; CR and LF
 * count as white space, so folded values need no copy. */
struct ap {
	const uint8_t *p;
	size_t len, pos;
	struct buf *out;
	bool any, ok;
	/* First comment inside the current address: the name of a bare
	 * addr-spec ("j@example.com (Jane)"). */
	size_t com_start, com_end;
	bool have_com;
	/* Scratch for the address being parsed, reused: one allocation
	 * per list, not per address. */
	struct buf phrase, local, dom, adl, name;
};

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 5322 specials plus white space end an atom. */
static bool is_atext(uint8_t c)
{
	if (is_ws(c))
		return false;
	switch (c) {
	case '(': case ')': case '<': case '>': case '[': case ']':
	case ':': case ';': case '@': case ',': case '.': case '"':
		return false;
	default:
		return true;
	}
}

static void skip_comment(struct ap *a)
{
	size_t start = a->pos + 1;
	unsigned int depth = 0;

	while (a->pos < a->len) {
		uint8_t c = a->p[a->pos];
		if (c == '\\' && a->pos + 1 < a->len) {
			a->pos += 2;
			continue;
		}
		a->pos++;
		if (c == '(') {
			depth++;
		} else if (c == ')' && --depth == 0) {
			if (!a->have_com) {
				a->have_com = true;
				a->com_start = start;
				a->com_end = a->pos - 1;
			}
			return;
		}
	}
	if (!a->have_com) {
		a->have_com = true;
		a->com_start = start;
		a->com_end = a->len;
	}
}

/* Skips CFWS; returns whether there was any. */
static bool skip_cfws(struct ap *a)
{
	size_t start = a->pos;
	while (a->pos < a->len) {
		uint8_t c = a->p[a->pos];
		if (is_ws(c))
			a->pos++;
		else if (c == '(')
			skip_comment(a);
		else
			break;
	}
	return a->pos != start;
}

static int peek(const struct ap *a)
{
	return a->pos < a->len ? a->p[a->pos] : -1;
}

/* Appends bytes without CR and LF (quoted strings can be folded). */
static void append_unfolded(struct buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			buf_append(b, p + i, 1);
	}
}

/* A quoted string at the cursor: its content (quoted-pairs undone,
 * line breaks dropped) appended to t1 and t2 (either may be NULL). */
static void read_quoted(struct ap *a, struct buf *t1, struct buf *t2)
{
	a->pos++;
	while (a->pos < a->len) {
		uint8_t c = a->p[a->pos];
		if (c == '"') {
			a->pos++;
			break;
		}
		if (c == '\\' && a->pos + 1 < a->len) {
			a->pos++;
			c = a->p[a->pos];
		}
		if (c != '\r' && c != '\n') {
			if (t1 != NULL)
				buf_append(t1, &c, 1);
			if (t2 != NULL)
				buf_append(t2, &c, 1);
		}
		a->pos++;
	}
}

static void read_atom(struct ap *a, struct buf *b1, struct buf *b2)
{
	size_t start = a->pos;
	while (a->pos < a->len && is_atext(a->p[a->pos]))
		a->pos++;
	if (b1 != NULL)
		buf_append(b1, a->p + start, a->pos - start);
	if (b2 != NULL)
		buf_append(b2, a->p + start, a->pos - start);
}

/* domain = dot-atom / domain-literal, CFWS around the dots dropped. */
static void read_domain(struct ap *a, struct buf *dom)
{
	for (;;) {
		skip_cfws(a);
		int c = peek(a);
		if (c == '[') {
			size_t start = a->pos;
			while (a->pos < a->len && a->p[a->pos] != ']')
				a->pos++;
			if (a->pos < a->len)
				a->pos++;
			append_unfolded(dom, a->p + start, a->pos - start);
			skip_cfws(a);
			return;
		}
		if (c < 0 || !is_atext((uint8_t)c))
			return;
		read_atom(a, dom, NULL);
		skip_cfws(a);
		if (peek(a) != '.')
			return;
		a->pos++;
		buf_append(dom, ".", 1);
	}
}

/* local-part words until '@' or '>' or anything else. */
static void read_local(struct ap *a, struct buf *local)
{
	for (;;) {
		skip_cfws(a);
		int c = peek(a);
		if (c == '"')
			read_quoted(a, local, NULL);
		else if (c == '.')
			buf_append(local, ".", 1), a->pos++;
		else if (c >= 0 && is_atext((uint8_t)c))
			read_atom(a, local, NULL);
		else
			return;
	}
}

static void out_str(struct ap *a, struct kstr s, bool nil_if_empty)
{
	if (a->ok && nil_if_empty && s.len == 0)
		a->ok = buf_append_str(a->out, "NIL");
	else if (a->ok)
		a->ok = mime_imap_string(a->out, s.p, s.len);
}

static void emit(struct ap *a, const struct buf *name, const struct buf *adl,
		 const struct buf *mbox, const struct buf *host)
{
	if (a->ok)
		a->ok = buf_append_str(a->out, a->any ? "(" : "((");
	a->any = true;
	out_str(a, bview(name), true);
	if (a->ok)
		a->ok = buf_append_str(a->out, " ");
	out_str(a, bview(adl), true);
	if (a->ok)
		a->ok = buf_append_str(a->out, " ");
	out_str(a, mbox->len > 0 ? bview(mbox) : KSTR_LIT("MISSING_MAILBOX"),
		false);
	if (a->ok)
		a->ok = buf_append_str(a->out, " ");
	out_str(a, host->len > 0 ? bview(host) : KSTR_LIT("MISSING_DOMAIN"),
		false);
	if (a->ok)
		a->ok = buf_append_str(a->out, ")");
}

static void emit_group(struct ap *a, const struct buf *name)
{
	if (a->ok)
		a->ok = buf_append_str(a->out, a->any ? "(NIL NIL " : "((NIL NIL ");
	a->any = true;
	if (name == NULL) {
		if (a->ok)
			a->ok = buf_append_str(a->out, "NIL NIL)");
		return;
	}
	out_str(a, bview(name), false);
	if (a->ok)
		a->ok = buf_append_str(a->out, " NIL)");
}

/* Skips what is left of a malformed address, up to the ',' that ends it
 * (consumed) or, in a group, the ';' (left for the caller). */
static void skip_junk(struct ap *a, bool in_group)
{
	while (a->pos < a->len) {
		uint8_t c = a->p[a->pos];
		if (c == ',') {
			a->pos++;
			return;
		}
		if (c == ';' && in_group)
			return;
		if (c == '"')
			read_quoted(a, NULL, NULL);
		else if (c == '(')
			skip_comment(a);
		else
			a->pos++;
	}
}

static void comment_name(const struct ap *a, struct buf *name)
{
	size_t s = a->com_start, e = a->com_end;
	while (s < e && is_ws(a->p[s]))
		s++;
	while (e > s && is_ws(a->p[e - 1]))
		e--;
	for (size_t i = s; i < e; i++) {
		uint8_t c = a->p[i];
		if (c == '\\' && i + 1 < e)
			c = a->p[++i];
		if (c != '\r' && c != '\n')
			buf_append(name, &c, 1);
	}
}

static void parse_angle(struct ap *a, struct buf *name)
{
	struct buf *adl = &a->adl, *local = &a->local, *dom = &a->dom;

	buf_reset(adl);
	buf_reset(local);
	buf_reset(dom);
	skip_cfws(a);
	if (peek(a) == '@') {
		/* obs-route: "@a,@b:" before the addr-spec */
		while (peek(a) == '@') {
			a->pos++;
			if (adl->len > 0)
				buf_append(adl, ",", 1);
			buf_append(adl, "@", 1);
			read_domain(a, adl);
			while (peek(a) == ',') {
				a->pos++;
				skip_cfws(a);
			}
		}
		if (peek(a) == ':')
			a->pos++;
	}
	read_local(a, local);
	skip_cfws(a);
	if (peek(a) == '@') {
		a->pos++;
		read_domain(a, dom);
	}
	while (a->pos < a->len && a->p[a->pos] != '>') {
		if (a->p[a->pos] == '"')
			read_quoted(a, NULL, NULL);
		else
			a->pos++;
	}
	if (a->pos < a->len)
		a->pos++;
	emit(a, name, adl, local, dom);
}

static void parse_address(struct ap *a, bool in_group);

static void parse_group(struct ap *a, const struct buf *name)
{
	emit_group(a, name);
	for (;;) {
		skip_cfws(a);
		int c = peek(a);
		if (c < 0)
			break;
		if (c == ';') {
			a->pos++;
			break;
		}
		if (c == ',') {
			a->pos++;
			continue;
		}
		size_t before = a->pos;
		parse_address(a, true);
		if (a->pos == before)
			a->pos++;
	}
	emit_group(a, NULL);
}

static void parse_address(struct ap *a, bool in_group)
{
	struct buf *phrase = &a->phrase, *local = &a->local;
	bool words = false, name_like = false;

	buf_reset(phrase);
	buf_reset(local);
	a->have_com = false;
	for (;;) {
		bool ws = skip_cfws(a);
		int c = peek(a);
		if (c == '"' || c == '.' || (c >= 0 && is_atext((uint8_t)c))) {
			if (ws && phrase->len > 0) {
				buf_append(phrase, " ", 1);
				name_like = true;
			}
			if (c == '"') {
				read_quoted(a, local, phrase);
				name_like = true;
			} else if (c == '.') {
				buf_append(phrase, ".", 1);
				buf_append(local, ".", 1);
				a->pos++;
			} else {
				read_atom(a, phrase, local);
			}
			words = true;
			continue;
		}
		break;
	}
	int c = peek(a);
	if (c == '<') {
		a->pos++;
		/* The phrase buffer is the name; parse_angle uses the
		 * others. */
		parse_angle(a, phrase);
	} else if (c == ':' && !in_group) {
		a->pos++;
		/* The group name is written before members reuse the
		 * scratch buffers. */
		parse_group(a, phrase);
	} else if (c == '@') {
		buf_reset(&a->dom);
		buf_reset(&a->name);
		buf_reset(&a->adl);
		a->pos++;
		read_domain(a, &a->dom);
		if (a->have_com)
			comment_name(a, &a->name);
		emit(a, &a->name, &a->adl, local, &a->dom);
	} else if (words) {
		/* No '@': a local name alone ("postmaster") is a mailbox; a
		 * phrase ("John Doe", "\"Name\"") is a name without an
		 * address. */
		buf_reset(&a->adl);
		if (name_like)
			emit(a, phrase, &a->adl, &a->adl, &a->adl);
		else
			emit(a, &a->adl, &a->adl, local, &a->adl);
	}
	skip_junk(a, in_group);
}

bool mime_address_list(struct kstr value, struct buf *out, bool *written_r)
{
	struct ap a = {
		.p = value.p, .len = value.len, .out = out, .ok = true,
	};

	while (a.pos < a.len) {
		skip_cfws(&a);
		int c = peek(&a);
		if (c < 0)
			break;
		if (c == ',') {
			a.pos++;
			continue;
		}
		size_t before = a.pos;
		parse_address(&a, false);
		if (a.pos == before)
			a.pos++;
	}
	if (a.any) {
		if (a.ok)
			a.ok = buf_append_str(out, ")");
	} else {
		a.ok = buf_append_str(out, "NIL");
	}
	buf_deinit(&a.phrase);
	buf_deinit(&a.local);
	buf_deinit(&a.dom);
	buf_deinit(&a.adl);
	buf_deinit(&a.name);
	*written_r = a.any;
	return a.ok;
}

/* Dates. A cursor over tokens: numbers, words, "hh:mm[:ss]", zones. */
struct dp {
	const uint8_t *p;
	size_t len, pos;
};

static void date_skip(struct dp *d, bool dashes)
{
	while (d->pos < d->len) {
		uint8_t c = d->p[d->pos];
		if (is_ws(c) || c == ',' || (dashes && c == '-')) {
			d->pos++;
		} else if (c == '(') {
			struct ap a = { .p = d->p, .len = d->len, .pos = d->pos };
			skip_comment(&a);
			d->pos = a.pos;
		} else {
			break;
		}
	}
}

static bool date_num(struct dp *d, unsigned int maxdig, int *v_r,
		     unsigned int *ndig_r)
{
	unsigned int n = 0;
	int v = 0;
	while (d->pos < d->len && d->p[d->pos] >= '0' && d->p[d->pos] <= '9') {
		if (++n > maxdig)
			return false;
		v = v * 10 + (d->p[d->pos] - '0');
		d->pos++;
	}
	*v_r = v;
	if (ndig_r != NULL)
		*ndig_r = n;
	return n > 0;
}

static size_t date_word(struct dp *d, const uint8_t **w_r)
{
	size_t s = d->pos;
	while (d->pos < d->len &&
	       ((d->p[d->pos] | 0x20) >= 'a' && (d->p[d->pos] | 0x20) <= 'z'))
		d->pos++;
	*w_r = d->p + s;
	return d->pos - s;
}

/* Howard Hinnant's days_from_civil. */
static int64_t days_from_civil(int64_t y, unsigned int m, unsigned int dd)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned int yoe = (unsigned int)(y - era * 400);
	unsigned int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
	unsigned int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

bool mime_date_parse(struct kstr s, int64_t *t_r, int *tz_min_r)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	struct dp d = { s.p, s.len, 0 };
	const uint8_t *w;
	size_t wl;
	int day, year, hh, mm, ss = 0, tz = 0;
	unsigned int ydig, month = 0;

	date_skip(&d, false);
	wl = date_word(&d, &w);
	if (wl > 0)
		date_skip(&d, false);	/* day of week, not checked */
	if (!date_num(&d, 2, &day, NULL) || day < 1 || day > 31)
		return false;
	date_skip(&d, true);
	wl = date_word(&d, &w);
	if (wl < 3)
		return false;
	for (unsigned int i = 0; i < 12; i++) {
		if (strncasecmp((const char *)w, months + i * 3, 3) == 0) {
			month = i + 1;
			break;
		}
	}
	if (month == 0)
		return false;
	date_skip(&d, true);
	if (!date_num(&d, 4, &year, &ydig))
		return false;
	/* RFC 5322 4.3: two digits are 1950-2049, three add 1900. */
	if (ydig <= 2)
		year += year < 50 ? 2000 : 1900;
	else if (ydig == 3)
		year += 1900;
	date_skip(&d, false);
	if (!date_num(&d, 2, &hh, NULL) || d.pos >= d.len || d.p[d.pos] != ':')
		return false;
	d.pos++;
	if (!date_num(&d, 2, &mm, NULL))
		return false;
	if (d.pos < d.len && d.p[d.pos] == ':') {
		d.pos++;
		if (!date_num(&d, 2, &ss, NULL))
			return false;
	}
	if (hh > 23 || mm > 59 || ss > 60)
		return false;
	date_skip(&d, false);
	if (d.pos < d.len && (d.p[d.pos] == '+' || d.p[d.pos] == '-')) {
		int sign = d.p[d.pos] == '-' ? -1 : 1;
		int z;
		unsigned int zd;
		d.pos++;
		if (date_num(&d, 4, &z, &zd) && zd == 4 && z % 100 < 60)
			tz = sign * (z / 100 * 60 + z % 100);
	} else {
		static const struct { const char *n; int off; } zones[] = {
			{ "UT", 0 }, { "GMT", 0 }, { "Z", 0 },
			{ "EST", -300 }, { "EDT", -240 }, { "CST", -360 },
			{ "CDT", -300 }, { "MST", -420 }, { "MDT", -360 },
			{ "PST", -480 }, { "PDT", -420 },
		};
		wl = date_word(&d, &w);
		for (size_t i = 0; wl > 0 && i < ARRAY_SIZE(zones); i++) {
			if (kstr_eq_ci(kstr_make(w, wl), zones[i].n)) {
				tz = zones[i].off;
				break;
			}
		}
		/* Military and unknown zones: RFC 5322 says take them as
		 * -0000, i.e. UTC with no known local zone. */
	}
	int64_t t = days_from_civil(year, month, (unsigned int)day) * 86400 +
		hh * 3600 + mm * 60 + ss - (int64_t)tz * 60;
	*t_r = t < 0 ? 0 : t;
	*tz_min_r = tz;
	return true;
}
