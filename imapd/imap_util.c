#include "imapd/imap_util.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* ---- sequence sets ---- */

/* seq-number = nz-number / "*"; nz-number has no leading zero and fits
 * in 32 bits (RFC 3501 9). */
static bool seq_number(const uint8_t **pp, const uint8_t *end, uint32_t star,
		       uint32_t *v_r)
{
	const uint8_t *p = *pp;

	if (p == end)
		return false;
	if (*p == '*') {
		*v_r = star;
		*pp = p + 1;
		return true;
	}
	if (*p < '1' || *p > '9')
		return false;
	uint64_t v = 0;
	while (p < end && *p >= '0' && *p <= '9') {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return false;
		p++;
	}
	*v_r = (uint32_t)v;
	*pp = p;
	return true;
}

/* One "n" or "n:m" item up to the next ',' or the end. */
static bool seq_item(const uint8_t **pp, const uint8_t *end, uint32_t star,
		     struct seqset_range *r_r)
{
	uint32_t a, b;

	if (!seq_number(pp, end, star, &a))
		return false;
	b = a;
	if (*pp < end && **pp == ':') {
		(*pp)++;
		if (!seq_number(pp, end, star, &b))
			return false;
	}
	if (*pp < end) {
		if (**pp != ',')
			return false;
		(*pp)++;
		if (*pp == end)
			return false;	/* trailing ',' */
	}
	r_r->lo = a < b ? a : b;
	r_r->hi = a < b ? b : a;
	return true;
}

static int range_cmp(const void *x, const void *y)
{
	const struct seqset_range *a = x, *b = y;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	return 0;
}

bool seqset_parse(struct kstr s, uint32_t star, size_t max_ranges,
		  struct seqset *set_r)
{
	size_t n = 1;

	set_r->r = NULL;
	set_r->count = 0;
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] == ',')
			n++;
	}
	if (max_ranges > 0 && n > max_ranges)
		return false;

	struct seqset_range *r = xmalloc(n * sizeof(*r));
	const uint8_t *p = s.p, *end = s.p + s.len;
	for (size_t i = 0; i < n; i++) {
		if (!seq_item(&p, end, star, &r[i])) {
			free(r);
			return false;
		}
	}
	if (p != end) {
		free(r);
		return false;
	}
	qsort(r, n, sizeof(*r), range_cmp);
	/* Merge overlapping and adjacent ranges. */
	size_t out = 0;
	for (size_t i = 1; i < n; i++) {
		if (r[out].hi == UINT32_MAX || r[i].lo <= r[out].hi + 1) {
			if (r[i].hi > r[out].hi)
				r[out].hi = r[i].hi;
		} else {
			r[++out] = r[i];
		}
	}
	set_r->r = r;
	set_r->count = out + 1;
	return true;
}

bool seqset_contains(const struct seqset *set, uint32_t v)
{
	size_t lo = 0, hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v < set->r[mid].lo)
			hi = mid;
		else if (v > set->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

void seqset_free(struct seqset *set)
{
	free(set->r);
	set->r = NULL;
	set->count = 0;
}

bool seqset_is_valid(struct kstr s)
{
	const uint8_t *p = s.p, *end = s.p + s.len;
	struct seqset_range r;

	if (s.len == 0)
		return false;
	while (p < end) {
		if (!seq_item(&p, end, 1, &r))
			return false;
	}
	return true;
}

void seqset_write(struct buf *out, const uint32_t *v, size_t n)
{
	size_t i = 0;
	bool first = true;

	while (i < n) {
		uint32_t lo = v[i], hi = v[i];
		i++;
		while (i < n && (v[i] == hi || (hi < UINT32_MAX &&
						v[i] == hi + 1))) {
			hi = v[i];
			i++;
		}
		if (lo == hi)
			buf_printf(out, "%s%u", first ? "" : ",", lo);
		else
			buf_printf(out, "%s%u:%u", first ? "" : ",", lo, hi);
		first = false;
	}
}

/* ---- modified UTF-7 ---- */

static const char mutf7_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int mutf7_b64_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool put_utf8(struct buf *out, uint32_t cp)
{
	uint8_t b[4];
	size_t n;

	if (out == NULL)
		return true;
	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | (cp >> 18));
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(out, b, n);
}

/* Decodes one "&...-" run starting after the '&' at in->p[*ip]. */
static bool mutf7_run(struct kstr in, size_t *ip, struct buf *out)
{
	size_t i = *ip;
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;

	while (i < in.len && in.p[i] != '-') {
		int v = mutf7_b64_val(in.p[i++]);
		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (high != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return false;
			uint32_t cp = 0x10000 + ((high - 0xd800) << 10) +
				(u - 0xdc00);
			high = 0;
			if (!put_utf8(out, cp))
				return false;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return false;
		} else if ((u >= 0x20 && u <= 0x7e) || u == 0) {
			/* Printable ASCII must stand for itself. */
			return false;
		} else if (!put_utf8(out, u)) {
			return false;
		}
	}
	if (i == in.len)
		return false;	/* not closed by '-' */
	/* Canonical: no half character, no spare base64 digit, zero pad. */
	if (high != 0 || nbits >= 6 || bits != 0 || i == *ip)
		return false;
	*ip = i + 1;
	return true;
}

static bool mutf7_decode(struct kstr in, struct buf *out)
{
	size_t i = 0;
	bool after_run = false;

	while (i < in.len) {
		uint8_t c = in.p[i];
		if (c == '&') {
			i++;
			if (i < in.len && in.p[i] == '-') {
				i++;
				after_run = false;
				if (out != NULL && !buf_append(out, "&", 1))
					return false;
				continue;
			}
			/* Two adjacent runs are one run, written apart. */
			if (after_run)
				return false;
			if (!mutf7_run(in, &i, out))
				return false;
			after_run = true;
			continue;
		}
		if (c < 0x20 || c > 0x7e)
			return false;
		if (out != NULL && !buf_append(out, &c, 1))
			return false;
		after_run = false;
		i++;
	}
	return true;
}

bool mutf7_to_utf8(struct kstr in, struct buf *out)
{
	return mutf7_decode(in, out);
}

bool mutf7_is_valid(struct kstr in)
{
	return mutf7_decode(in, NULL);
}

/* Decodes one UTF-8 character at in.p[*ip] (RFC 3629 strict). */
static bool utf8_next(struct kstr in, size_t *ip, uint32_t *cp_r)
{
	size_t i = *ip;
	uint8_t c = in.p[i];
	uint32_t cp, min;
	unsigned n;

	if (c < 0x80) {
		*cp_r = c;
		*ip = i + 1;
		return true;
	} else if (c >= 0xc2 && c <= 0xdf) {
		cp = c & 0x1f;
		n = 1;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		cp = c & 0x0f;
		n = 2;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		cp = c & 0x07;
		n = 3;
		min = 0x10000;
	} else {
		return false;
	}
	if (in.len - i - 1 < n)
		return false;
	for (unsigned k = 1; k <= n; k++) {
		uint8_t d = in.p[i + k];
		if ((d & 0xc0) != 0x80)
			return false;
		cp = (cp << 6) | (d & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return false;
	*cp_r = cp;
	*ip = i + 1 + n;
	return true;
}

/* Flushes the bits left in a base64 run (zero-padded) and closes it. */
static bool mutf7_run_end(struct buf *out, uint32_t bits, unsigned nbits)
{
	char b64[2];
	size_t nb = 0;

	if (nbits > 0)
		b64[nb++] = mutf7_b64[(bits << (6 - nbits)) & 0x3f];
	b64[nb++] = '-';
	return buf_append(out, b64, nb);
}

bool utf8_to_mutf7(struct kstr in, struct buf *out)
{
	size_t i = 0;
	bool in_run = false;
	uint32_t bits = 0;
	unsigned nbits = 0;
	char b64[8];
	size_t nb;

	while (i < in.len) {
		uint32_t cp;
		if (!utf8_next(in, &i, &cp) || cp == 0)
			return false;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (in_run) {
				if (!mutf7_run_end(out, bits, nbits))
					return false;
				in_run = false;
				bits = 0;
				nbits = 0;
			}
			uint8_t ch = (uint8_t)cp;
			bool ok = cp == '&' ? buf_append(out, "&-", 2) :
				buf_append(out, &ch, 1);
			if (!ok)
				return false;
			continue;
		}
		if (!in_run) {
			if (!buf_append(out, "&", 1))
				return false;
			in_run = true;
		}
		uint32_t units[2];
		unsigned nu = 0;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[nu++] = 0xd800 | (cp >> 10);
			units[nu++] = 0xdc00 | (cp & 0x3ff);
		} else {
			units[nu++] = cp;
		}
		for (unsigned k = 0; k < nu; k++) {
			bits = (bits << 16) | units[k];
			nbits += 16;
			nb = 0;
			while (nbits >= 6) {
				nbits -= 6;
				b64[nb++] = mutf7_b64[(bits >> nbits) & 0x3f];
			}
			bits &= (1u << nbits) - 1;
			if (!buf_append(out, b64, nb))
				return false;
		}
	}
	if (in_run && !mutf7_run_end(out, bits, nbits))
		return false;
	return true;
}

/* ---- dates ---- */

static const char *const month_names[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
	static const int days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = (m + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y_r, int *m_r, int *d_r)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = (int)(y + (m <= 2));
	*m_r = m;
	*d_r = d;
}

struct cursor {
	const uint8_t *p, *end;
};

static bool cur_digits(struct cursor *c, unsigned n, int *v_r)
{
	int v = 0;

	if ((size_t)(c->end - c->p) < n)
		return false;
	for (unsigned i = 0; i < n; i++) {
		uint8_t d = c->p[i];
		if (d < '0' || d > '9')
			return false;
		v = v * 10 + (d - '0');
	}
	c->p += n;
	*v_r = v;
	return true;
}

static bool cur_char(struct cursor *c, uint8_t ch)
{
	if (c->p == c->end || *c->p != ch)
		return false;
	c->p++;
	return true;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" (and " d-" when space_ok); days since
 * the epoch. */
static bool cur_date(struct cursor *c, bool space_ok, int64_t *days_r)
{
	int d, y, m = 0;

	if (space_ok && c->p < c->end && *c->p == ' ') {
		c->p++;
		if (!cur_digits(c, 1, &d))
			return false;
	} else if (!cur_digits(c, 2, &d) && !cur_digits(c, 1, &d)) {
		return false;
	}
	if (!cur_char(c, '-') || c->end - c->p < 3)
		return false;
	for (int i = 0; i < 12; i++) {
		if (kstr_eq_ci(kstr_make(c->p, 3), month_names[i])) {
			m = i + 1;
			break;
		}
	}
	if (m == 0)
		return false;
	c->p += 3;
	if (!cur_char(c, '-') || !cur_digits(c, 4, &y))
		return false;
	if (y == 0 || d < 1 || d > month_days(y, m))
		return false;
	*days_r = days_from_civil(y, m, d);
	return true;
}

bool imap_datetime_parse(struct kstr s, int64_t *t_r, int *tz_min_r)
{
	struct cursor c = { s.p, s.p + s.len };
	int64_t days;
	int hh, mi, ss, zh, zm;

	if (!cur_date(&c, true, &days) || !cur_char(&c, ' ') ||
	    !cur_digits(&c, 2, &hh) || !cur_char(&c, ':') ||
	    !cur_digits(&c, 2, &mi) || !cur_char(&c, ':') ||
	    !cur_digits(&c, 2, &ss) || !cur_char(&c, ' ') || c.p == c.end)
		return false;
	uint8_t sign = *c.p++;
	if ((sign != '+' && sign != '-') || !cur_digits(&c, 2, &zh) ||
	    !cur_digits(&c, 2, &zm) || c.p != c.end)
		return false;
	/* ss 60: a leap second. */
	if (hh > 23 || mi > 59 || ss > 60 || zh > 23 || zm > 59)
		return false;
	int tz = (zh * 60 + zm) * (sign == '-' ? -1 : 1);
	*t_r = days * 86400 + hh * 3600 + mi * 60 + ss - (int64_t)tz * 60;
	*tz_min_r = tz;
	return true;
}

bool imap_date_parse(struct kstr s, int64_t *t_r)
{
	struct cursor c = { s.p, s.p + s.len };
	int64_t days;

	if (!cur_date(&c, false, &days) || c.p != c.end)
		return false;
	*t_r = days * 86400;
	return true;
}

void imap_datetime_write(struct buf *out, int64_t t, int tz_min)
{
	/* 4DIGIT years only: 0001-01-01 .. 9999-12-31, zones within a day. */
	const int64_t t_min = -62135596800LL, t_max = 253402300799LL;
	int y, m, d;

	if (tz_min < -(23 * 60 + 59) || tz_min > 23 * 60 + 59)
		tz_min = 0;
	int64_t local = t + (int64_t)tz_min * 60;
	if (local < t_min)
		local = t_min;
	if (local > t_max)
		local = t_max;
	int64_t days = local / 86400, secs = local % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	int az = tz_min < 0 ? -tz_min : tz_min;
	buf_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"",
		   d, month_names[m - 1], y, (int)(secs / 3600),
		   (int)(secs / 60 % 60), (int)(secs % 60),
		   tz_min < 0 ? '-' : '+', az / 60, az % 60);
}

/* ---- writing strings ---- */

bool imap_is_atom_char(uint8_t c)
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

static bool is_quotable(struct kstr s)
{
	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];
		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
			return false;
	}
	return true;
}

void imap_write_string(struct buf *out, struct kstr s)
{
	if (!is_quotable(s)) {
		buf_printf(out, "{%zu}\r\n", s.len);
		buf_append(out, s.p, s.len);
		return;
	}
	buf_append(out, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] == '"' || s.p[i] == '\\') {
			buf_append(out, s.p + start, i - start);
			buf_append(out, "\\", 1);
			start = i;
		}
	}
	buf_append(out, s.p + start, s.len - start);
	buf_append(out, "\"", 1);
}

void imap_write_nstring(struct buf *out, const uint8_t *p, size_t len)
{
	if (p == NULL) {
		buf_append(out, "NIL", 3);
		return;
	}
	imap_write_string(out, kstr_make(p, len));
}

void imap_write_astring(struct buf *out, struct kstr s)
{
	/* "NIL" as an atom would read as NIL where an nstring may stand;
	 * brackets in atoms trip up clients (and our own parser, which
	 * reads "a[b c]" as one atom), so names holding them are quoted. */
	bool atom = s.len > 0 && !kstr_eq_ci(s, "NIL");
	for (size_t i = 0; atom && i < s.len; i++) {
		if (!imap_is_atom_char(s.p[i]) || s.p[i] == '[')
			atom = false;
	}
	if (atom)
		buf_append(out, s.p, s.len);
	else
		imap_write_string(out, s);
}
