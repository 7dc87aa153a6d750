"""FETCH of every data item, byte-exact against what was appended
(RFC 3501 6.4.5, 7.4.2; MIME structure per RFC 2045/2046)."""

from integlib import (Fail, eq, expect, flagset, message, parse_imap_date, select_info)

CRLF = b"\r\n"

# ------------------------------------------------------------ fixtures
# Built from pieces so that every section's exact bytes are known.

SIMPLE_H = (b"Return-Path: <alice@example.org>\r\n"
	    b"Received: from a.example by b.example; Mon, 02 Jan 2023 11:59:00 +0000\r\n"
	    b"Received: from c.example by d.example; Mon, 02 Jan 2023 11:58:00 +0000\r\n"
	    b"From: \"Doe, Alice\" <alice@example.org>\r\n"
	    b"Sender: secretary@example.org\r\n"
	    b"Reply-To: replies@example.org\r\n"
	    b"To: Bob <bob@example.net>, carol@example.com\r\n"
	    b"Cc: Dave <dave@example.com>\r\n"
	    b"Bcc: eve@example.com\r\n"
	    b"Subject: Simple\r\n folded subject\r\n"
	    b"Date: Mon, 02 Jan 2023 12:00:00 +0000\r\n"
	    b"Message-ID: <simple@example.org>\r\n"
	    b"In-Reply-To: <parent@example.org>\r\n"
	    b"X-Custom: value\r\n"
	    b"MIME-Version: 1.0\r\n"
	    b"Content-Type: text/plain; charset=\"utf-8\"\r\n"
	    b"Content-Transfer-Encoding: 8bit\r\n")
SIMPLE_B = "Hello Bob,\r\nthis is line two.\r\n\u00dcn\u00efc\u00f6d\u00e9 line.\r\n".encode("utf-8")
SIMPLE = SIMPLE_H + CRLF + SIMPLE_B

MINIMAL_H = b"From: alice@example.org\r\nSubject: minimal\r\n"
MINIMAL_B = b"x\r\n"
MINIMAL = MINIMAL_H + CRLF + MINIMAL_B

P1_H = b""
P1_B = b"Intro text.\r\n"
P21_H = b"Content-Type: text/plain; charset=us-ascii\r\n"
P21_B = b"Plain part.\r\nSecond line.\r\n"
P22_H = b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
P22_B = b"<p>HTML part =C3=BC</p>\r\n"
P2_H = b"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
P2_B = (b"--inner\r\n" + P21_H + CRLF + P21_B + b"\r\n--inner\r\n" + P22_H + CRLF + P22_B
	+ b"\r\n--inner--\r\n")
P3_H = (b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
	b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
	b"Content-Transfer-Encoding: base64\r\n"
	b"Content-ID: <part3@example.org>\r\n"
	b"Content-Description: some bytes\r\n")
P3_B = b"AAECAwQFBgcICQ==\r\n"
P4_IH = (b"From: Inner <inner@example.org>\r\nSubject: inner message\r\n"
	 b"Date: Wed, 04 Jan 2023 12:00:00 +0000\r\n")
P4_IB = b"Inner body.\r\n"
P4_H = b"Content-Type: message/rfc822\r\n"
P4_B = P4_IH + CRLF + P4_IB
MULTI_H = (b"From: Alice <alice@example.org>\r\n"
	   b"To: undisclosed-recipients:;\r\n"
	   b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n"
	   b"Date: Tue, 03 Jan 2023 12:00:00 +0000\r\n"
	   b"Message-ID: <multi@example.org>\r\n"
	   b"MIME-Version: 1.0\r\n"
	   b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n")
MULTI_B = (b"This is a preamble.\r\n\r\n--outer\r\n" + P1_H + CRLF + P1_B
	   + b"\r\n--outer\r\n" + P2_H + CRLF + P2_B
	   + b"\r\n--outer\r\n" + P3_H + CRLF + P3_B
	   + b"\r\n--outer\r\n" + P4_H + CRLF + P4_B
	   + b"\r\n--outer--\r\nEpilogue.\r\n")
MULTI = MULTI_H + CRLF + MULTI_B


def lines(b):
	return b.count(b"\n")


def addr(name, mailbox, host):
	return (name, None, mailbox, host)


ENV_SIMPLE = ("Mon, 02 Jan 2023 12:00:00 +0000", "Simple folded subject",
	      [addr("Doe, Alice", "alice", "example.org")],
	      [addr(None, "secretary", "example.org")],
	      [addr(None, "replies", "example.org")],
	      [addr("Bob", "bob", "example.net"), addr(None, "carol", "example.com")],
	      [addr("Dave", "dave", "example.com")],
	      [addr(None, "eve", "example.com")],
	      "<parent@example.org>", "<simple@example.org>")
_MIN_FROM = [addr(None, "alice", "example.org")]
ENV_MINIMAL = (None, "minimal", _MIN_FROM, _MIN_FROM, _MIN_FROM, None, None, None, None, None)
_MULTI_FROM = [addr("Alice", "alice", "example.org")]
ENV_MULTI = ("Tue, 03 Jan 2023 12:00:00 +0000", "=?ISO-8859-1?Q?Gr=FC=DFe?=",
	     _MULTI_FROM, _MULTI_FROM, _MULTI_FROM,
	     [(None, None, "undisclosed-recipients", None), (None, None, None, None)],
	     None, None, None, "<multi@example.org>")
_INNER_FROM = [addr("Inner", "inner", "example.org")]
ENV_INNER = ("Wed, 04 Jan 2023 12:00:00 +0000", "inner message", _INNER_FROM, _INNER_FROM,
	     _INNER_FROM, None, None, None, None, None)


def part(typ, sub, params, size, enc="7bit", id=None, desc=None, nlines=None, env=None,
	 body=None, dsp=None):
	return {"type": typ, "subtype": sub, "params": params, "id": id, "desc": desc, "enc": enc,
		"size": size, "lines": nlines, "env": env, "body": body,
		"ext": [None, dsp, None, None]}


def mpart(parts, sub, params):
	return {"parts": parts, "subtype": sub, "ext": [params, None, None, None]}


BS_SIMPLE = part("text", "plain", {"charset": "utf-8"}, len(SIMPLE_B), enc="8bit",
		 nlines=lines(SIMPLE_B))
BS_MINIMAL = part("text", "plain", {"charset": "us-ascii"}, len(MINIMAL_B), nlines=1)
BS_INNER = part("text", "plain", {"charset": "us-ascii"}, len(P4_IB), nlines=lines(P4_IB))
BS_MULTI = mpart([
	part("text", "plain", {"charset": "us-ascii"}, len(P1_B), nlines=lines(P1_B)),
	mpart([part("text", "plain", {"charset": "us-ascii"}, len(P21_B), nlines=lines(P21_B)),
	       part("text", "html", {"charset": "utf-8"}, len(P22_B), enc="quoted-printable",
		    nlines=lines(P22_B))],
	      "alternative", {"boundary": "inner"}),
	part("application", "octet-stream", {"name": "data.bin"}, len(P3_B), enc="base64",
	     id="<part3@example.org>", desc="some bytes",
	     dsp=("attachment", {"filename": "data.bin"})),
	part("message", "rfc822", None, len(P4_B), env=ENV_INNER, body=BS_INNER,
	     nlines=lines(P4_B)),
], "mixed", {"boundary": "outer"})


# ------------------------------------------------------------ comparison

def s(v):
	if isinstance(v, bytes):
		return v.decode("utf-8", "replace")
	return v


def cmp_env(got, want, path, probs):
	if not isinstance(got, list) or len(got) != 10:
		probs.append("%s: ENVELOPE must be a 10-element list, got %r" % (path, got))
		return
	names = ["date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
		 "in-reply-to", "message-id"]
	for i, n in enumerate(names):
		g, w = got[i], want[i]
		if i in (2, 3, 4, 5, 6, 7):
			if w is None:
				if g is not None:
					probs.append("%s.%s: want NIL, got %r" % (path, n, g))
				continue
			if not isinstance(g, list):
				probs.append("%s.%s: want address list, got %r" % (path, n, g))
				continue
			ga = [tuple(s(x) for x in a) if isinstance(a, list) else a for a in g]
			if ga != [tuple(a) for a in w]:
				probs.append("%s.%s: want %r, got %r" % (path, n, w, ga))
		elif s(g) != w:
			probs.append("%s.%s: want %r, got %r" % (path, n, w, s(g)))


def cmp_params(got, want, path, probs):
	if want is None:
		if got is not None:
			probs.append("%s: want NIL parameters, got %r" % (path, got))
		return
	if not isinstance(got, list) or len(got) % 2:
		probs.append("%s: bad parameter list %r" % (path, got))
		return
	gd = {}
	for i in range(0, len(got), 2):
		k = s(got[i]).lower()
		v = s(got[i + 1])
		gd[k] = v.lower() if k == "charset" else v
	if gd != want:
		probs.append("%s: parameters want %r, got %r" % (path, want, gd))


def cmp_ext(got, want, path, probs, single):
	"""Extension data is optional and may stop after any field (RFC 3501
	body-ext-1part / body-ext-mpart); what is there must be right."""
	for i, g in enumerate(got[:4]):
		w = want[i]
		if single and i == 0:		# body MD5
			if g is not None:
				probs.append("%s: MD5 want NIL, got %r" % (path, g))
		elif (not single and i == 0):	# multipart parameters
			cmp_params(g, w, path + ".params", probs)
		elif i == 1:			# disposition
			if w is None:
				if g is not None:
					probs.append("%s: disposition want NIL, got %r" % (path, g))
			elif not (isinstance(g, list) and len(g) == 2):
				probs.append("%s: disposition want %r, got %r" % (path, w, g))
			else:
				if s(g[0]).lower() != w[0]:
					probs.append("%s: disposition type want %r, got %r" % (path, w[0], g[0]))
				cmp_params(g[1], w[1], path + ".disposition", probs)
		elif i in (2, 3):		# language, location
			if g is not None:
				probs.append("%s: %s want NIL, got %r" % (path, ["", "", "language", "location"][i], g))


def cmp_body(got, want, ext, path="body"):
	probs = []
	_cmp_body(got, want, ext, path, probs)
	return probs


def _cmp_body(got, want, ext, path, probs):
	if not isinstance(got, list) or not got:
		probs.append("%s: not a list: %r" % (path, got))
		return
	if "parts" in want:
		kids = []
		i = 0
		while i < len(got) and isinstance(got[i], list):
			kids.append(got[i])
			i += 1
		if len(kids) != len(want["parts"]):
			probs.append("%s: %d parts, want %d" % (path, len(kids), len(want["parts"])))
			return
		for k, (g, w) in enumerate(zip(kids, want["parts"])):
			_cmp_body(g, w, ext, "%s.%d" % (path, k + 1), probs)
		if i >= len(got) or s(got[i]).lower() != want["subtype"]:
			probs.append("%s: subtype want %r, got %r" % (path, want["subtype"], got[i:i + 1]))
		rest = got[i + 1:]
		if not ext and rest:
			probs.append("%s: BODY must not carry extension data: %r" % (path, rest))
		if ext:
			cmp_ext(rest, want["ext"], path, probs, single=False)
		return
	if isinstance(got[0], list):
		probs.append("%s: multipart where %s/%s expected" % (path, want["type"], want["subtype"]))
		return
	if len(got) < 7:
		probs.append("%s: too few fields: %r" % (path, got))
		return
	if s(got[0]).lower() != want["type"] or s(got[1]).lower() != want["subtype"]:
		probs.append("%s: type want %s/%s, got %r/%r" % (path, want["type"], want["subtype"],
								  got[0], got[1]))
	cmp_params(got[2], want["params"], path + ".params", probs)
	if s(got[3]) != want["id"]:
		probs.append("%s: id want %r, got %r" % (path, want["id"], got[3]))
	if s(got[4]) != want["desc"]:
		probs.append("%s: description want %r, got %r" % (path, want["desc"], got[4]))
	if s(got[5]) is None or s(got[5]).lower() != want["enc"]:
		probs.append("%s: encoding want %r, got %r" % (path, want["enc"], got[5]))
	if str(got[6]) != str(want["size"]):
		probs.append("%s: size want %d, got %r" % (path, want["size"], got[6]))
	i = 7
	if want["type"] == "message" and want["subtype"] == "rfc822":
		if len(got) < 10:
			probs.append("%s: message/rfc822 needs envelope, body, lines: %r" % (path, got))
			return
		cmp_env(got[7], want["env"], path + ".envelope", probs)
		_cmp_body(got[8], want["body"], ext, path + ".body", probs)
		if str(got[9]) != str(want["lines"]):
			probs.append("%s: lines want %d, got %r" % (path, want["lines"], got[9]))
		i = 10
	elif want["type"] == "text":
		if len(got) < 8 or str(got[7]) != str(want["lines"]):
			probs.append("%s: lines want %d, got %r" % (path, want["lines"], got[7:8]))
		i = 8
	rest = got[i:]
	if not ext and rest:
		probs.append("%s: BODY must not carry extension data: %r" % (path, rest))
	if ext:
		cmp_ext(rest, want["ext"], path, probs, single=True)


def setup(ctx, msgs, flags=None):
	c = ctx.login()
	uids = [c.append("INBOX", m, flags=(flags[i] if flags else None)) for i, m in enumerate(msgs)]
	c.select("INBOX")
	return c, uids


def fetch1(c, seq, items, uid=False):
	r = c.ok("%sFETCH %s %s" % ("UID " if uid else "", seq, items))
	f = r.fetches()
	expect(len(f) == 1, "FETCH %s %s: want one message, got %r" % (seq, items, r.untagged))
	return list(f.values())[0], r


# ------------------------------------------------------------ tests

def test_fetch_body_sections(ctx):
	c, _ = setup(ctx, [SIMPLE, MULTI])
	want1 = {"BODY[]": SIMPLE, "BODY[HEADER]": SIMPLE_H + CRLF, "BODY[TEXT]": SIMPLE_B,
		 "BODY[1]": SIMPLE_B}
	want2 = {"BODY[]": MULTI, "BODY[HEADER]": MULTI_H + CRLF, "BODY[TEXT]": MULTI_B,
		 "BODY[1]": P1_B, "BODY[1.MIME]": P1_H + CRLF,
		 "BODY[2]": P2_B, "BODY[2.MIME]": P2_H + CRLF,
		 "BODY[2.1]": P21_B, "BODY[2.1.MIME]": P21_H + CRLF,
		 "BODY[2.2]": P22_B, "BODY[2.2.MIME]": P22_H + CRLF,
		 "BODY[3]": P3_B, "BODY[3.MIME]": P3_H + CRLF,
		 "BODY[4]": P4_B, "BODY[4.MIME]": P4_H + CRLF,
		 "BODY[4.HEADER]": P4_IH + CRLF, "BODY[4.TEXT]": P4_IB, "BODY[4.1]": P4_IB}
	probs = []
	for seq, want in ((1, want1), (2, want2)):
		items = " ".join(k.replace("BODY[", "BODY.PEEK[") for k in want)
		f, _r = fetch1(c, seq, "(%s)" % items)
		for k, v in want.items():
			if k not in f:
				probs.append("message %d: %s missing in response" % (seq, k))
			elif f[k] != v:
				probs.append("message %d %s: got %r, want %r" % (seq, k, f[k][:200], v[:200]))
	if probs:
		raise Fail("; ".join(probs))


def test_fetch_header_fields(ctx):
	c, _ = setup(ctx, [SIMPLE, MULTI])
	cases = {
		"BODY[HEADER.FIELDS (FROM SUBJECT)]":
			b"From: \"Doe, Alice\" <alice@example.org>\r\nSubject: Simple\r\n folded subject\r\n\r\n",
		"BODY[HEADER.FIELDS (RECEIVED)]":
			b"Received: from a.example by b.example; Mon, 02 Jan 2023 11:59:00 +0000\r\n"
			b"Received: from c.example by d.example; Mon, 02 Jan 2023 11:58:00 +0000\r\n\r\n",
		"BODY[HEADER.FIELDS (X-NOT-THERE)]": b"\r\n",
		"BODY[HEADER.FIELDS (x-custom)]": b"X-Custom: value\r\n\r\n",
		"BODY[HEADER.FIELDS.NOT (RECEIVED RETURN-PATH SUBJECT BCC CC TO FROM SENDER REPLY-TO "
		"MESSAGE-ID IN-REPLY-TO MIME-VERSION CONTENT-TYPE)]":
			b"Date: Mon, 02 Jan 2023 12:00:00 +0000\r\nX-Custom: value\r\n"
			b"Content-Transfer-Encoding: 8bit\r\n\r\n",
	}
	probs = []
	for k, v in cases.items():
		f, r = fetch1(c, 1, k.replace("BODY[", "BODY.PEEK["))
		got = None
		for key, val in f.items():
			if key.startswith("BODY[HEADER.FIELDS"):
				got = val
				if key.replace(" ", "") != k.upper().replace(" ", ""):
					probs.append("response names section %r for request %r" % (key, k))
		if got != v:
			probs.append("%s: got %r, want %r" % (k, got, v))
	f, _ = fetch1(c, 1, 'BODY.PEEK[HEADER.FIELDS ("Subject" X-Custom)]')
	eq(list(f.values()), [b"Subject: Simple\r\n folded subject\r\nX-Custom: value\r\n\r\n"],
	   "HEADER.FIELDS with a quoted field name")
	f, _ = fetch1(c, 1, "(BODY.PEEK[]<0.5> BODY.PEEK[]<5.5>)")
	eq((f.get("BODY[]<0>"), f.get("BODY[]<5>")), (SIMPLE[:5], SIMPLE[5:10]), "two partials of one section")
	f, _ = fetch1(c, 2, "BODY.PEEK[4.HEADER.FIELDS (SUBJECT)]")
	eq(list(f.values())[0], b"Subject: inner message\r\n\r\n", "BODY[4.HEADER.FIELDS (SUBJECT)]")
	if probs:
		raise Fail("; ".join(probs))


def test_fetch_partial(ctx):
	c, _ = setup(ctx, [SIMPLE])
	f, _ = fetch1(c, 1, "BODY.PEEK[]<0.10>")
	eq(list(f), ["BODY[]<0>"], "response item name of BODY[]<0.10>")
	eq(f["BODY[]<0>"], SIMPLE[:10], "BODY[]<0.10>")
	f, _ = fetch1(c, 1, "BODY.PEEK[]<7.25>")
	eq(f.get("BODY[]<7>"), SIMPLE[7:32], "BODY[]<7.25>")
	f, _ = fetch1(c, 1, "BODY.PEEK[TEXT]<3.5>")
	eq(f.get("BODY[TEXT]<3>"), SIMPLE_B[3:8], "BODY[TEXT]<3.5>")
	n = len(SIMPLE)
	f, _ = fetch1(c, 1, "BODY.PEEK[]<%d.100>" % (n - 4))
	eq(f.get("BODY[]<%d>" % (n - 4)), SIMPLE[-4:], "partial running past the end")
	f, _ = fetch1(c, 1, "BODY.PEEK[]<%d.10>" % (n + 100))
	eq(f.get("BODY[]<%d>" % (n + 100)), b"", "partial starting past the end")
	f, _ = fetch1(c, 1, "BODY.PEEK[HEADER.FIELDS (FROM)]<0.4>")
	eq(list(f.values()), [b"From"], "partial of HEADER.FIELDS")


def test_fetch_rfc822_items(ctx):
	c, _ = setup(ctx, [SIMPLE])
	f, _ = fetch1(c, 1, "(RFC822.SIZE RFC822.HEADER)")
	eq(int(f["RFC822.SIZE"]), len(SIMPLE), "RFC822.SIZE")
	eq(f["RFC822.HEADER"], SIMPLE_H + CRLF, "RFC822.HEADER")
	f, _ = fetch1(c, 1, "FLAGS")
	eq(flagset(f["FLAGS"]), set(), "RFC822.HEADER must not set \\Seen")
	f, _ = fetch1(c, 1, "RFC822.TEXT")
	eq(f["RFC822.TEXT"], SIMPLE_B, "RFC822.TEXT")
	f, _ = fetch1(c, 1, "RFC822")
	eq(f["RFC822"], SIMPLE, "RFC822")


def test_fetch_seen_semantics(ctx):
	c, _ = setup(ctx, [SIMPLE] * 6)
	for item in ("BODY.PEEK[]", "BODY.PEEK[TEXT]", "RFC822.HEADER", "RFC822.SIZE", "ENVELOPE",
		     "BODYSTRUCTURE", "BODY", "BODY.PEEK[1]"):
		c.ok("FETCH 1 %s" % item)
	f, _ = fetch1(c, 1, "FLAGS")
	eq(flagset(f["FLAGS"]), set(), "flags after non-setting FETCH items")
	for seq, item in ((2, "BODY[]"), (3, "BODY[TEXT]"), (4, "RFC822"), (5, "RFC822.TEXT"),
			  (6, "BODY[HEADER]")):
		r = c.ok("FETCH %d %s" % (seq, item))
		flags = None
		for s_, items in r.fetch_list():
			if s_ == seq and "FLAGS" in items:
				flags = items["FLAGS"]
		expect(flags is not None, "FETCH %d %s set \\Seen but sent no FLAGS: %r" % (seq, item, r.untagged))
		expect("\\seen" in flagset(flags), "FLAGS after %s lack \\Seen: %r" % (item, flags))
		f, _ = fetch1(c, seq, "FLAGS")
		expect("\\seen" in flagset(f["FLAGS"]), "%s did not set \\Seen" % item)
	# Already \Seen: a second BODY[] may or may not repeat FLAGS; both fine.
	c.ok("FETCH 2 BODY[]")


def test_fetch_envelope(ctx):
	c, _ = setup(ctx, [SIMPLE, MINIMAL, MULTI])
	probs = []
	for seq, want in ((1, ENV_SIMPLE), (2, ENV_MINIMAL), (3, ENV_MULTI)):
		f, _ = fetch1(c, seq, "ENVELOPE")
		cmp_env(f["ENVELOPE"], want, "message %d" % seq, probs)
	if probs:
		raise Fail("; ".join(probs))


def test_fetch_body_and_bodystructure(ctx):
	c, _ = setup(ctx, [SIMPLE, MINIMAL, MULTI])
	probs = []
	for seq, want in ((1, BS_SIMPLE), (2, BS_MINIMAL), (3, BS_MULTI)):
		f, _ = fetch1(c, seq, "(BODY BODYSTRUCTURE)")
		probs += cmp_body(f.get("BODY"), want, False, "message %d BODY" % seq)
		probs += cmp_body(f.get("BODYSTRUCTURE"), want, True, "message %d BODYSTRUCTURE" % seq)
	if probs:
		raise Fail("; ".join(probs))


def test_fetch_macros(ctx):
	c, _ = setup(ctx, [SIMPLE], flags=[["\\Flagged"]])
	want = {"FAST": {"FLAGS", "INTERNALDATE", "RFC822.SIZE"},
		"ALL": {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"},
		"FULL": {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}}
	for macro, keys in want.items():
		f, _ = fetch1(c, 1, macro)
		expect(keys <= set(f), "FETCH %s: items %r, want %r" % (macro, sorted(f), sorted(keys)))
		expect(not {"BODY[]", "RFC822", "BODYSTRUCTURE"} & set(f), "FETCH %s returned %r" % (macro, sorted(f)))
		eq(int(f["RFC822.SIZE"]), len(SIMPLE), "%s RFC822.SIZE" % macro)
		eq(flagset(f["FLAGS"]), {"\\flagged"}, "%s FLAGS" % macro)
		parse_imap_date(f["INTERNALDATE"])
		if "ENVELOPE" in keys:
			probs = []
			cmp_env(f["ENVELOPE"], ENV_SIMPLE, macro, probs)
			expect(not probs, "; ".join(probs))
		if macro == "FULL":
			probs = cmp_body(f["BODY"], BS_SIMPLE, False, "FULL BODY")
			expect(not probs, "; ".join(probs))
	f, _ = fetch1(c, 1, "(FLAGS)")
	eq(flagset(f["FLAGS"]), {"\\flagged"}, "macros must not set \\Seen")


def test_fetch_internaldate_format(ctx):
	c = ctx.login()
	c.append("INBOX", SIMPLE, date=" 2-Jan-2023 03:04:05 +0130")
	c.append("INBOX", SIMPLE, date="12-Dec-2022 23:59:59 -0800")
	c.select("INBOX")
	r = c.ok("FETCH 1:2 INTERNALDATE")
	import re
	for seq, raw in ((1, " 2-Jan-2023 03:04:05 +0130"), (2, "12-Dec-2022 23:59:59 -0800")):
		line = [u for u in r.untagged if u.startswith(b"* %d FETCH" % seq)][0]
		m = re.search(rb'INTERNALDATE "([^"]*)"', line)
		expect(m, "INTERNALDATE is not a quoted string: %r" % line)
		expect(re.match(rb"^[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}$", m.group(1)),
		       "INTERNALDATE %r does not follow date-time syntax" % m.group(1))
		eq(parse_imap_date(m.group(1)), parse_imap_date(raw), "INTERNALDATE instant")


def test_uid_fetch_includes_uid(ctx):
	c, uids = setup(ctx, [SIMPLE, MINIMAL, MULTI])
	r = c.ok("UID FETCH 1:* (FLAGS)")
	lst = r.fetch_list()
	eq(len(lst), 3, "UID FETCH 1:* responses")
	for seq, items in lst:
		expect("UID" in items, "UID FETCH response without UID: %r" % r.untagged)
		eq(int(items["UID"]), uids[seq - 1], "UID of message %d" % seq)
	r = c.ok("UID FETCH %d,%d RFC822.SIZE" % (uids[0], uids[2]))
	eq(sorted(int(i["UID"]) for _s, i in r.fetch_list()), [uids[0], uids[2]], "UID FETCH of a UID list")
	r = c.ok("UID FETCH %d:* UID" % (uids[2] + 1000))
	eq([int(i["UID"]) for _s, i in r.fetch_list()], [uids[2]], "UID FETCH n:* with n above UIDNEXT")
	r = c.ok("UID FETCH %d:%d FLAGS" % (uids[2] + 1000, uids[2] + 2000))
	eq(r.fetch_list(), [], "UID FETCH of a range without messages")


def test_fetch_sequence_sets(ctx):
	c, uids = setup(ctx, [message(subject=str(i)) for i in range(6)])
	for spec, want in (("2:4", [2, 3, 4]), ("*", [6]), ("4:*", [4, 5, 6]), ("1,3,5", [1, 3, 5]),
			   ("5:2", [2, 3, 4, 5]), ("*:5", [5, 6]), ("1,1,2", [1, 2]), ("1:2,2:3", [1, 2, 3])):
		r = c.ok("FETCH %s UID" % spec)
		eq(sorted(r.fetches()), want, "FETCH %s" % spec)


def test_fetch_out_of_range(ctx):
	c, _ = setup(ctx, [SIMPLE, MINIMAL])
	for cmd in ("FETCH 3 FLAGS", "FETCH 2:7 FLAGS", "FETCH 99 BODY[]", "STORE 5 +FLAGS (\\Seen)",
		    "COPY 9 INBOX"):
		r = c.cmd(cmd)
		expect(r.status in ("NO", "BAD") or (cmd.startswith("FETCH 2:7") and r.status == "OK"),
		       "%s with 2 messages: %r" % (cmd, r))
		c.ok("NOOP")
	eq(select_info(c.select("INBOX"))["EXISTS"], [2], "mailbox after out-of-range commands")
	f, _ = fetch1(c, 2, "FLAGS")
	eq(flagset(f["FLAGS"]), set(), "flags after out-of-range STORE")


def test_fetch_many_messages(ctx):
	msgs = [message(subject="bulk %d" % i, body=("line %d\n" % i) * (i % 17 + 1)) for i in range(60)]
	c, uids = setup(ctx, msgs)
	r = c.ok("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	f = r.fetches()
	eq(len(f), 60, "messages fetched")
	for i, m in enumerate(msgs):
		it = f[i + 1]
		eq(it["BODY[]"], m, "body %d" % i)
		eq(int(it["UID"]), uids[i], "uid %d" % i)
		eq(int(it["RFC822.SIZE"]), len(m), "size %d" % i)
		eq(it["BODY[HEADER.FIELDS (SUBJECT)]"], b"Subject: bulk %d\r\n\r\n" % i, "subject %d" % i)


def test_fetch_imaplib(ctx):
	m = ctx.imap_login()
	m.append("INBOX", None, None, MULTI)
	m.select("INBOX")
	typ, data = m.fetch("1", "(BODY.PEEK[2.1] BODY.PEEK[4.HEADER])")
	eq(typ, "OK", "imaplib FETCH")
	got = [d[1] for d in data if isinstance(d, tuple)]
	eq(got, [P21_B, P4_IH + CRLF], "sections via imaplib")
	typ, data = m.uid("FETCH", "1:*", "(RFC822.SIZE)")
	eq(typ, "OK", "imaplib UID FETCH")
	expect(b"UID" in data[0] and b"RFC822.SIZE %d" % len(MULTI) in data[0], "imaplib UID FETCH data %r" % data)


def quoted_strings(data):
	"""Raw contents of every quoted string in response bytes (literals
	skipped)."""
	import re
	out = []
	i, n = 0, len(data)
	while i < n:
		c = data[i]
		if c == 0x7B:
			m = re.compile(rb"\{(\d+)\}\r\n").match(data, i)
			if m:
				i = m.end() + int(m.group(1))
				continue
		if c == 0x22:
			j = i + 1
			while j < n and data[j] != 0x22:
				j += 2 if data[j] == 0x5C else 1
			out.append(data[i + 1:j])
			i = j + 1
			continue
		i += 1
	return out


def test_fetch_quoting_and_8bit(ctx):
	m1 = (b"From: \"Quote \\\"Q\\\" Person\" <q@example.org>\r\n"
	      b"Subject: He said \"hi\" \\o/ {3}\r\n"
	      b"Date: Mon, 02 Jan 2023 12:00:00 +0000\r\n\r\nbody\r\n")
	m2 = ("From: J\u00fcrgen <j@example.org>\r\nSubject: Gr\u00fc\u00dfe \u65e5\u672c\r\n"
	      "Content-Type: text/plain; name=\"na\u00efve.txt\"\r\n\r\nbody\r\n").encode("utf-8")
	c, _ = setup(ctx, [m1, m2])
	r = c.ok("FETCH 1:2 (ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	for u in r.untagged:
		for q in quoted_strings(u):
			expect(all(b < 0x80 for b in q) and b"\r" not in q and b"\n" not in q,
			       "8-bit or CR/LF inside a quoted string (must be a literal): %r" % q)
	f = r.fetches()
	env1, env2 = f[1]["ENVELOPE"], f[2]["ENVELOPE"]
	eq(s(env1[1]), 'He said "hi" \\o/ {3}', "subject with quotes, backslash and braces")
	eq(s(env1[2][0][0]), 'Quote "Q" Person', "display name with escaped quotes")
	eq(env2[1], "Gr\u00fc\u00dfe \u65e5\u672c".encode("utf-8"), "raw 8-bit subject")
	eq(env2[2][0][0], "J\u00fcrgen".encode("utf-8"), "raw 8-bit display name")
	params = f[2]["BODYSTRUCTURE"][2]
	expect(isinstance(params, list) and "na\u00efve.txt".encode("utf-8") in params,
	       "8-bit parameter value: %r" % (params,))


def _leaves(bs, prefix):
	"""(part path, body) for every non-multipart part of a BODYSTRUCTURE."""
	if isinstance(bs, list) and bs and isinstance(bs[0], list):
		k = 0
		for child in bs:
			if not isinstance(child, list):
				break
			k += 1
			yield from _leaves(child, prefix + [k])
		return
	yield (prefix or [1]), bs
	if isinstance(bs, list) and len(bs) > 8 and s(bs[0]).lower() == "message" and \
	   s(bs[1]).lower() == "rfc822" and isinstance(bs[8], list):
		inner = bs[8]
		if inner and isinstance(inner[0], list):
			yield from _leaves(inner, prefix or [1])
		else:
			yield from _leaves(inner, (prefix or [1]) + [1])


def test_fetch_mime_corpus(ctx):
	# Every message of the project's MIME corpus: responses must follow
	# the grammar (checked by Conn), sections must add up, and each leaf's
	# BODYSTRUCTURE size must be the length of its BODY[part].
	import glob
	import os
	from integlib import REPO
	files = sorted(glob.glob(os.path.join(REPO, "tests", "data", "mime", "*.eml")))
	files = [f for f in files if b"\x00" not in open(f, "rb").read()]	# see test_append_empty_and_nul
	if not files:
		return
	c = ctx.login()
	for f in files:
		c.append("INBOX", open(f, "rb").read())
	c.select("INBOX")
	probs = []
	for i, f in enumerate(files):
		name = os.path.basename(f)
		raw = open(f, "rb").read()
		r = c.ok("FETCH %d (ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] "
			 "BODY.PEEK[TEXT])" % (i + 1))
		it = r.fetches()[i + 1]
		full = it["BODY[]"]
		if full.replace(b"\r\n", b"\n") != raw.replace(b"\r\n", b"\n"):
			probs.append("%s: BODY[] differs from the appended bytes" % name)
		if int(it["RFC822.SIZE"]) != len(full):
			probs.append("%s: RFC822.SIZE %s != len(BODY[]) %d" % (name, it["RFC822.SIZE"], len(full)))
		if it["BODY[HEADER]"] + it["BODY[TEXT]"] != full:
			probs.append("%s: BODY[HEADER] + BODY[TEXT] != BODY[]" % name)
		for path, leaf in _leaves(it["BODYSTRUCTURE"], []):
			sec = ".".join(str(p) for p in path)
			rr = c.cmd("FETCH %d (BODY.PEEK[%s] BODY.PEEK[%s.MIME])" % (i + 1, sec, sec))
			if rr.status != "OK":
				probs.append("%s: FETCH BODY[%s] -> %r" % (name, sec, rr))
				continue
			got = rr.fetches().get(i + 1, {}).get("BODY[%s]" % sec)
			if not isinstance(leaf, list) or len(leaf) < 7 or not str(leaf[6]).isdigit():
				probs.append("%s: part %s has no size: %r" % (name, sec, leaf))
			elif got is None or len(got) != int(leaf[6]):
				probs.append("%s: part %s BODYSTRUCTURE size %s but BODY[%s] has %s bytes"
					     % (name, sec, leaf[6], sec, None if got is None else len(got)))
	if probs:
		raise Fail("; ".join(probs[:12]) + (" (%d problems)" % len(probs) if len(probs) > 12 else ""))
