/* mime_decode: transfer decodings, charsets, RFC 2047 and case folding
 * for search and FETCH BINARY. */
#include "index/mime.h"

#include <errno.h>
#include <iconv.h>
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

static const int8_t b64_val[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17,
	['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
	['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31,
	['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41,
	['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46,
	['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51,
	['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61,
	['9'] = 62, ['+'] = 63, ['/'] = 64,
};

bool mime_base64_decode(struct kstr in, struct buf *out)
{
	/* Stored off by one so that 0 means "not in the alphabet". */
	size_t room = in.len / 4 * 3 + 3;
	uint8_t *d = buf_reserve(out, room);
	if (d == NULL)
		return false;
	size_t n = 0;
	uint32_t acc = 0;
	unsigned int bits = 0;

	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.p[i];
		if (c == '=') {
			/* Padding ends this quantum; whatever follows is
			 * decoded as a fresh encoding. */
			acc = 0;
			bits = 0;
			continue;
		}
		int v = b64_val[c];
		if (v == 0)
			continue;
		acc = (acc << 6) | (uint32_t)(v - 1);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			d[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	buf_commit(out, n);
	return true;
}

static int hex_val(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool mime_qp_decode(struct kstr in, struct buf *out)
{
	if (in.len == 0)
		return true;
	uint8_t *d = buf_reserve(out, in.len);
	if (d == NULL)
		return false;
	size_t n = 0, pos = 0;

	while (pos < in.len) {
		const uint8_t *nl = memchr(in.p + pos, '\n', in.len - pos);
		size_t le = nl != NULL ? (size_t)(nl - in.p) : in.len;
		size_t ce = le;
		if (ce > pos && in.p[ce - 1] == '\r')
			ce--;
		/* RFC 2045 6.7 (3): trailing white space was added in
		 * transport and is not part of the data. */
		while (ce > pos && (in.p[ce - 1] == ' ' || in.p[ce - 1] == '\t'))
			ce--;
		bool soft = ce > pos && in.p[ce - 1] == '=';
		if (soft)
			ce--;
		for (size_t i = pos; i < ce; i++) {
			uint8_t c = in.p[i];
			if (c == '=' && i + 2 < ce) {
				int h = hex_val(in.p[i + 1]);
				int l = hex_val(in.p[i + 2]);
				if (h >= 0 && l >= 0) {
					d[n++] = (uint8_t)(h << 4 | l);
					i += 2;
					continue;
				}
			}
			d[n++] = c;
		}
		if (nl == NULL)
			break;
		if (!soft) {
			/* Keep the line break as it was stored. */
			for (size_t i = ce; i <= le; i++) {
				if (in.p[i] == '\r' || in.p[i] == '\n')
					d[n++] = in.p[i];
			}
		}
		pos = le + 1;
	}
	buf_commit(out, n);
	return true;
}

static bool utf8_put(struct buf *out, uint32_t cp)
{
	uint8_t *d = buf_reserve(out, 4);
	if (d == NULL)
		return false;
	if (cp < 0x80) {
		d[0] = (uint8_t)cp;
		buf_commit(out, 1);
	} else if (cp < 0x800) {
		d[0] = (uint8_t)(0xc0 | cp >> 6);
		d[1] = (uint8_t)(0x80 | (cp & 0x3f));
		buf_commit(out, 2);
	} else if (cp < 0x10000) {
		d[0] = (uint8_t)(0xe0 | cp >> 12);
		d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		d[2] = (uint8_t)(0x80 | (cp & 0x3f));
		buf_commit(out, 3);
	} else {
		d[0] = (uint8_t)(0xf0 | cp >> 18);
		d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		d[3] = (uint8_t)(0x80 | (cp & 0x3f));
		buf_commit(out, 4);
	}
	return true;
}

/* Length of the valid UTF-8 sequence at p (1-4) and its code point, or
 * 0 when the bytes there are not valid UTF-8 (overlongs, surrogates and
 * values past U+10FFFF are invalid). */
static size_t utf8_seq(const uint8_t *p, size_t len, uint32_t *cp_r)
{
	uint8_t c = p[0];
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	size_t n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

static bool utf8_is_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_seq(p + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static bool latin1_to_utf8(struct kstr in, struct buf *out)
{
	if (in.len == 0)
		return true;
	uint8_t *d = buf_reserve(out, in.len * 2);
	if (d == NULL)
		return false;
	size_t n = 0;
	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.p[i];
		if (c < 0x80) {
			d[n++] = c;
		} else {
			d[n++] = (uint8_t)(0xc0 | c >> 6);
			d[n++] = (uint8_t)(0x80 | (c & 0x3f));
		}
	}
	buf_commit(out, n);
	return true;
}

/* Bytes as they are, or as ISO-8859-1 when they are not valid UTF-8:
 * what raw 8-bit header text most likely is. */
static bool raw_to_utf8(struct kstr in, struct buf *out)
{
	if (utf8_is_valid(in.p, in.len))
		return buf_append_kstr(out, in);
	return latin1_to_utf8(in, out);
}

static bool charset_is(struct kstr cs, const char *name)
{
	return kstr_eq_ci(cs, name);
}

bool mime_charset_to_utf8(struct kstr charset, struct kstr in,
			  struct buf *out)
{
	char name[48];

	if (in.len == 0)
		return true;
	if (charset.len == 0 || charset.len >= sizeof(name) ||
	    charset_is(charset, "us-ascii") || charset_is(charset, "utf-8") ||
	    charset_is(charset, "utf8") || charset_is(charset, "ascii"))
		return buf_append_kstr(out, in);
	if (charset_is(charset, "iso-8859-1") || charset_is(charset, "latin1") ||
	    charset_is(charset, "iso8859-1") || charset_is(charset, "l1"))
		return latin1_to_utf8(in, out);
	/* A charset name reaches iconv_open(), which gives '/' a meaning
	 * of its own: only plain names get there. */
	for (size_t i = 0; i < charset.len; i++) {
		uint8_t c = charset.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':' || c == '+'))
			return buf_append_kstr(out, in);
	}
	memcpy(name, charset.p, charset.len);
	name[charset.len] = '\0';
	iconv_t cd = iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1)
		return buf_append_kstr(out, in);

	char *ip = (char *)(uintptr_t)in.p;
	size_t ileft = in.len;
	bool ok = true;
	while (ileft > 0) {
		size_t room = ileft * 2 + 16;
		uint8_t *d = buf_reserve(out, room);
		if (d == NULL) {
			ok = false;
			break;
		}
		char *op = (char *)d;
		size_t oleft = room;
		size_t r = iconv(cd, &ip, &ileft, &op, &oleft);
		buf_commit(out, room - oleft);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ or a sequence cut at the end: one replacement
		 * character, then go on after the bad byte. */
		if (!utf8_put(out, 0xfffd)) {
			ok = false;
			break;
		}
		ip++;
		ileft--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	/* Flush the shift state of stateful encodings (ISO-2022-JP). */
	if (ok) {
		uint8_t *d = buf_reserve(out, 16);
		if (d != NULL) {
			char *op = (char *)d;
			size_t oleft = 16;
			iconv(cd, NULL, NULL, &op, &oleft);
			buf_commit(out, 16 - oleft);
		}
	}
	iconv_close(cd);
	return ok;
}

/* One RFC 2047 encoded-word at p[0..len):
 * "=?charset[*lang]?B|Q?text?=", found but not decoded. */
struct ew {
	struct kstr charset, text;
	bool b;
	size_t used;
};

/* Longest encoded text accepted (RFC 2047 allows 75 characters for the
 * whole word; real mail is sloppier). */
#define EW_MAX_TEXT 4096

/* Finding "?=" again for every "=?" would be quadratic on a header made
 * of "=?a?q?" repeated: remember the last one found. */
struct qe_cache {
	size_t from, at;	/* first "?=" at or after from is at */
	bool valid;
};

static size_t find_qe(const uint8_t *p, size_t len, size_t from,
		      struct qe_cache *qc)
{
	if (qc->valid && from >= qc->from && from <= qc->at)
		return qc->at;
	if (qc->valid && from < qc->from) {
		/* Only the bytes before the cached start are new. */
		for (size_t i = from; i + 1 < len && i < qc->from; i++) {
			if (p[i] == '?' && p[i + 1] == '=')
				return i;
		}
		return qc->at;
	}
	size_t i = from;
	while (i + 1 < len && !(p[i] == '?' && p[i + 1] == '='))
		i++;
	qc->from = from;
	qc->at = i + 1 < len ? i : len;
	qc->valid = true;
	return qc->at;
}

static bool ew_parse(const uint8_t *p, size_t len, size_t start,
		     struct qe_cache *qc, struct ew *ew)
{
	size_t i = start + 2;
	while (i < len && i < start + 80 && p[i] != '?' && p[i] > ' ' &&
	       p[i] < 0x7f)
		i++;
	if (i >= len || p[i] != '?' || i == start + 2)
		return false;
	ew->charset = kstr_make(p + start + 2, i - start - 2);
	const uint8_t *star = memchr(ew->charset.p, '*', ew->charset.len);
	if (star != NULL)
		ew->charset.len = (size_t)(star - ew->charset.p);
	i++;
	if (i + 2 >= len || p[i + 1] != '?')
		return false;
	uint8_t enc = p[i] | 0x20;
	if (enc != 'b' && enc != 'q')
		return false;
	ew->b = enc == 'b';
	i += 2;
	/* Lenient: broken mailers put spaces in Q text, so the word ends
	 * at the first "?=" whatever comes before it. */
	size_t e = find_qe(p, len, i, qc);
	if (e >= len || e - i > EW_MAX_TEXT)
		return false;
	ew->text = kstr_make(p + i, e - i);
	ew->used = e + 2 - start;
	return true;
}

static bool q_decode(struct kstr text, struct buf *out)
{
	if (text.len == 0)
		return true;
	uint8_t *d = buf_reserve(out, text.len);
	if (d == NULL)
		return false;
	size_t n = 0;
	for (size_t k = 0; k < text.len; k++) {
		uint8_t c = text.p[k];
		if (c == '_') {
			d[n++] = ' ';
			continue;
		}
		if (c == '=' && k + 2 < text.len) {
			int h = hex_val(text.p[k + 1]);
			int l = hex_val(text.p[k + 2]);
			if (h >= 0 && l >= 0) {
				d[n++] = (uint8_t)(h << 4 | l);
				k += 2;
				continue;
			}
		}
		d[n++] = c;
	}
	buf_commit(out, n);
	return true;
}

static bool is_blank(struct kstr s)
{
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] != ' ' && s.p[i] != '\t')
			return false;
	}
	return true;
}

bool mime_header_decode(struct kstr in, struct buf *out)
{
	struct buf u, pend;
	struct kstr pend_cs = { NULL, 0 };
	bool ok = true, after_word = false;

	/* Unfold first: the line breaks go, the white space after them
	 * stays (RFC 5322 2.2.3). */
	buf_init(&u, 0);
	uint8_t *d = buf_reserve(&u, in.len + 1);
	size_t n = 0;
	for (size_t i = 0; i < in.len; i++) {
		if (in.p[i] != '\r' && in.p[i] != '\n')
			d[n++] = in.p[i];
	}
	buf_commit(&u, n);
	const uint8_t *p = u.data;

	buf_init(&pend, 0);
	struct qe_cache qc = { 0, 0, false };
	size_t i = 0, seg = 0;
	while (i < n) {
		struct ew ew;
		if (p[i] != '=' || i + 1 >= n || p[i + 1] != '?' ||
		    !ew_parse(p, n, i, &qc, &ew)) {
			i++;
			continue;
		}
		struct kstr gap = kstr_make(p + seg, i - seg);
		if (after_word && is_blank(gap)) {
			/* RFC 2047 6.2: white space between adjacent words
			 * is not displayed. Same charset: keep collecting
			 * bytes so a character split over words survives. */
			if (!(ew.charset.len == pend_cs.len &&
			      strncasecmp((const char *)ew.charset.p,
					  (const char *)pend_cs.p,
					  ew.charset.len) == 0)) {
				ok = ok && mime_charset_to_utf8(pend_cs,
						bview(&pend), out);
				buf_reset(&pend);
			}
		} else {
			ok = ok && mime_charset_to_utf8(pend_cs, bview(&pend),
							out);
			buf_reset(&pend);
			ok = ok && raw_to_utf8(gap, out);
		}
		pend_cs = ew.charset;
		if (ew.b)
			ok = ok && mime_base64_decode(ew.text, &pend);
		else
			ok = ok && q_decode(ew.text, &pend);
		i += ew.used;
		seg = i;
		after_word = true;
	}
	ok = ok && mime_charset_to_utf8(pend_cs, bview(&pend), out);
	ok = ok && raw_to_utf8(kstr_make(p + seg, n - seg), out);
	buf_deinit(&pend);
	buf_deinit(&u);
	return ok;
}

/* Simple case folding (Unicode CaseFolding.txt, C+S) for the scripts
 * mail mostly carries. Hand-written so that it does not depend on the
 * process locale: the folded form must be the same on every node. */
static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x100) {
		if (c >= 'A' && c <= 'Z')
			return c + 32;
		if (c == 0xb5)
			return 0x3bc;
		if (c >= 0xc0 && c <= 0xde && c != 0xd7)
			return c + 32;
		return c;
	}
	if (c <= 0x17f) {
		/* Latin Extended-A: upper case at even (or odd) code points,
		 * lower case right after. */
		if (c <= 0x12f || (c >= 0x132 && c <= 0x137) ||
		    (c >= 0x14a && c <= 0x177))
			return c | 1;
		if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
			return (c & 1) ? c + 1 : c;
		if (c == 0x178)
			return 0xff;
		if (c == 0x17f)
			return 's';
		return c;
	}
	if (c >= 0x370 && c <= 0x3ff) {
		if (c == 0x386)
			return 0x3ac;
		if (c >= 0x388 && c <= 0x38a)
			return c + 37;
		if (c == 0x38c)
			return 0x3cc;
		if (c == 0x38e || c == 0x38f)
			return c + 63;
		if (c >= 0x391 && c <= 0x3ab && c != 0x3a2)
			return c + 32;
		if (c == 0x3c2)
			return 0x3c3;
		if (c >= 0x3d8 && c <= 0x3ef)
			return c | 1;
		return c;
	}
	if (c >= 0x400 && c <= 0x52f) {
		if (c <= 0x40f)
			return c + 80;
		if (c <= 0x42f)
			return c + 32;
		if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) ||
		    c >= 0x4d0)
			return c | 1;
		if (c == 0x4c0)
			return 0x4cf;
		if (c >= 0x4c1 && c <= 0x4ce)
			return (c & 1) ? c + 1 : c;
		return c;
	}
	if (c >= 0x531 && c <= 0x556)
		return c + 48;
	if (c >= 0x1e00 && c <= 0x1eff) {
		if (c == 0x1e9e)
			return 0xdf;
		if (c <= 0x1e95 || c >= 0x1ea0)
			return c | 1;
		return c;
	}
	if (c >= 0xff21 && c <= 0xff3a)
		return c + 32;
	return c;
}

void utf8_casefold(struct kstr in, struct buf *out)
{
	/* No folded character here is longer than its input, so a chunk
	 * needs its own size plus one character that crosses its end. */
	size_t i = 0;
	while (i < in.len) {
		size_t chunk = in.len - i < 4096 ? in.len - i : 4096;
		uint8_t *d = buf_reserve(out, chunk * 2 + 8);
		if (d == NULL)
			return;
		size_t n = 0, end = i + chunk;
		while (i < end) {
			uint8_t c = in.p[i];
			if (c < 0x80) {
				d[n++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
				i++;
				continue;
			}
			uint32_t cp;
			size_t sl = utf8_seq(in.p + i, in.len - i, &cp);
			if (sl == 0) {
				d[n++] = c;
				i++;
				continue;
			}
			i += sl;
			cp = fold_cp(cp);
			if (cp < 0x80) {
				d[n++] = (uint8_t)cp;
			} else if (cp < 0x800) {
				d[n++] = (uint8_t)(0xc0 | cp >> 6);
				d[n++] = (uint8_t)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				d[n++] = (uint8_t)(0xe0 | cp >> 12);
				d[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
				d[n++] = (uint8_t)(0x80 | (cp & 0x3f));
			} else {
				d[n++] = (uint8_t)(0xf0 | cp >> 18);
				d[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
				d[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
				d[n++] = (uint8_t)(0x80 | (cp & 0x3f));
			}
		}
		buf_commit(out, n);
	}
}
