"""Pipelining (RFC 3501 5.5) of the extension commands.

- test_pipeline_20_commands: 20 mixed tagged commands in one write, each
  depending on state its predecessor changed, answered once each, in
  order, with the right tags and results (also over COMPRESS).  This is
  stricter than RFC 3501 5.5, which tells clients not to pipeline
  ambiguous commands and lets servers run others concurrently; it checks
  kura's strictly sequential execution (Dovecot, which runs pipelined
  commands concurrently, fails it: SEARCH answered before the APPEND it
  follows completed).
- test_pipeline_independent: 20 commands that RFC 3501 allows in one
  write; every tag answered exactly once, OK, with correct results, in
  any order."""

from integlib import Result, eq, expect, message, parse
from test_x_lib import compress, esearch, fill, lax, need, statuses


def _name(v):
	return v.decode() if isinstance(v, bytes) else str(v)


def _es(r):
	"""The ESEARCH response of r's own command (by its TAG correlator)."""
	mine = [e for e in esearch(r) if e["TAG"] == r.tag]
	eq(len(mine), 1, "ESEARCH responses for %s" % r.tag)
	return mine[0]


def _script(uids):
	"""(tag, command bytes, check(result)) for 20 commands."""
	u1, u2, u3 = uids
	msg = message(subject="pipelined")
	flagged = lambda r: [int(it["UID"]) for it in r.fetches().values()  # noqa: E731
			     if "\\flagged" in {str(f).lower() for f in it.get("FLAGS", [])}]
	cmds = [
		(b"SELECT INBOX (CONDSTORE)", lambda r: eq(r.number("EXISTS"), 3, "EXISTS")),
		(b"UID STORE %d +FLAGS (\\Flagged)" % u2, None),
		(b"UID FETCH 1:* (UID FLAGS)", lambda r: eq(flagged(r), [u2], "flagged after UID STORE")),
		(b"UID SEARCH RETURN (COUNT MIN) FLAGGED",
		 lambda r: eq((_es(r)["COUNT"], _es(r)["MIN"]), ("1", str(u2)), "ESEARCH")),
		(b"UID STORE %d -FLAGS (\\Flagged)" % u2, None),
		(b"UID SEARCH RETURN (COUNT) FLAGGED", lambda r: eq(_es(r)["COUNT"], "0", "COUNT after -FLAGS")),
		(b"APPEND INBOX (\\Flagged) {%d+}\r\n%s" % (len(msg), msg), None),
		(b"NOOP", None),
		(b"UID SEARCH RETURN (COUNT) FLAGGED", lambda r: eq(_es(r)["COUNT"], "1", "COUNT after APPEND")),
		(b"STATUS INBOX (MESSAGES HIGHESTMODSEQ)",
		 lambda r: eq(statuses(r)["INBOX"]["MESSAGES"], "4", "STATUS MESSAGES")),
		(b"CREATE pipe/a", None),
		(b'LIST "" "pipe/*"', lambda r: eq([_name(parse(x)[4]) for x in r.untagged if b"LIST" in x[:8]],
						  ["pipe/a"], "LIST after CREATE")),
		(b"UID COPY %d:%d pipe/a" % (u1, u3), lambda r: eq(r.code_name(), "COPYUID", "COPY code")),
		(b"STATUS pipe/a (MESSAGES)", lambda r: eq(statuses(r)["pipe/a"]["MESSAGES"], "3", "copied")),
		(b"RENAME pipe/a pipe/b", None),
		(b"STATUS pipe/b (MESSAGES)", lambda r: eq(statuses(r)["pipe/b"]["MESSAGES"], "3", "renamed")),
		(b"UID MOVE %d pipe/b" % u1, None),
		(b"STATUS pipe/b (MESSAGES)", lambda r: eq(statuses(r)["pipe/b"]["MESSAGES"], "4", "moved")),
		(b"UID SORT (REVERSE ARRIVAL) UTF-8 ALL", lambda r: expect(len(r.data("SORT")) == 1, "SORT")),
		(b"DELETE pipe/b", None),
	]
	return cmds


def _run(ctx, c, label):
	uids = fill(c, "INBOX", 3)
	cmds = _script(uids)
	eq(len(cmds), 20, "script length")
	tags = ["Q%02d" % i for i in range(len(cmds))]
	c.send(b"".join(t.encode() + b" " + cmd + b"\r\n" for t, (cmd, _chk) in zip(tags, cmds)))
	# Read everything up to the last tag, remembering the order of tagged lines.
	seen = []
	pending = []
	results = {}
	while len(seen) < len(tags):
		line = c.read_response()
		t = line.split(b" ", 1)[0].decode("latin-1")
		if t in tags:
			expect(t not in seen, "%s: tag %s answered twice" % (label, t))
			seen.append(t)
			# kura executes strictly in order, so the untagged data
			# before a tagged line belongs to that command.
			results[t] = Result(t, line, pending, [])
			pending = []
		else:
			expect(not line.startswith(b"+"), "%s: continuation request for a LITERAL+ literal: %r" % (label, line))
			expect(line.startswith(b"* "), "%s: response with an unknown tag: %r" % (label, line))
			pending.append(line)
	for t, (cmd, chk) in zip(tags, cmds):
		r = results[t]
		eq(r.status, "OK", "%s: %s %s (%r)" % (label, t, cmd[:40], r))
		if chk:
			chk(r)
	eq(seen, tags, "%s: tagged responses in command order" % label)
	c.ok("NOOP")


def test_pipeline_20_commands(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "LITERAL+", "ESEARCH", "CONDSTORE", "MOVE", "SORT", "UIDPLUS"):
		return
	_run(ctx, c, "plain")


def test_pipeline_20_commands_compressed(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "COMPRESS=DEFLATE", "LITERAL+", "ESEARCH", "CONDSTORE", "MOVE", "SORT"):
		return
	compress(c)
	_run(ctx, c, "compressed")


def test_pipeline_independent(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "ESEARCH", "LIST-STATUS"):
		return
	uids = fill(c, "INBOX", 4, flags=[["\\Seen"], None, ["\\Flagged"], None])
	c.ok("CREATE other")
	c.select("INBOX")
	cmds = {}
	for i in range(4):
		cmds["I%02d" % len(cmds)] = ("UID FETCH %d (UID RFC822.SIZE)" % uids[i], None)
		cmds["I%02d" % len(cmds)] = ("UID SEARCH RETURN (COUNT) UID %d:%d" % (uids[0], uids[i]), str(i + 1))
	for _ in range(3):
		cmds["I%02d" % len(cmds)] = ("NOOP", None)
		cmds["I%02d" % len(cmds)] = ("CAPABILITY", None)
	cmds["I%02d" % len(cmds)] = ('LIST "" other RETURN (STATUS (MESSAGES))', None)
	cmds["I%02d" % len(cmds)] = ("STATUS other (MESSAGES UIDNEXT)", None)
	cmds["I%02d" % len(cmds)] = ("UID SEARCH RETURN (COUNT) SEEN", "1")
	cmds["I%02d" % len(cmds)] = ("UID SEARCH RETURN (COUNT) FLAGGED", "1")
	cmds["I%02d" % len(cmds)] = ("NAMESPACE", None)
	cmds["I%02d" % len(cmds)] = ("ID NIL", None)
	eq(len(cmds), 20, "script length")
	c.send("".join("%s %s\r\n" % (t, cmd) for t, (cmd, _w) in cmds.items()))
	done, lines = [], []
	while len(done) < len(cmds):
		line = c.read_response()
		t = line.split(b" ", 1)[0].decode("latin-1")
		if t == "*":
			lines.append(line)
			continue
		expect(t in cmds and t not in done, "unexpected or repeated tagged response %r" % line)
		expect(line[len(t) + 1:].startswith(b"OK"), "%s %s: %r" % (t, cmds[t][0], line))
		done.append(t)
	got = {e["TAG"]: e for e in esearch(Result("", b"", lines, []))}
	for t, (cmd, want) in cmds.items():
		if want is not None:
			eq(got.get(t, {}).get("COUNT"), want, "%s %s" % (t, cmd))
	sizes = [u for u in lines if b"RFC822.SIZE" in u]
	eq(len(sizes), 4, "UID FETCH responses")
	eq(len([u for u in lines if u.startswith(b"* CAPABILITY")]), 3, "CAPABILITY responses")
	c.ok("NOOP")
