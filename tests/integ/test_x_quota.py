"""QUOTA (RFC 9208) with QUOTA=RES-STORAGE: GETQUOTAROOT / GETQUOTA
answers, and on a private kura-imapd whose users file gives a quota
(`name:{PLAIN}pw:quota=100K`): STORAGE usage/limit in units of 1024
octets, APPEND, COPY and MULTIAPPEND beyond the quota refused with
NO [OVERQUOTA] and nothing half done, space freed by EXPUNGE usable
again, STATUS DELETED-STORAGE (RFC 9208 5.1) and SETQUOTA refused
without QUOTASET."""

from integlib import Lit, User, eq, expect, message, quote
from test_x_lib import lax, need, own_server, statuses, uids_of

LIMIT_K = 100


def _quota_server(ctx):
	"""A private server with users qa (quota 100K) and nq (no quota)."""
	return own_server(ctx, users=["qa:{PLAIN}pwqa:quota=%dK" % LIMIT_K, "nq:{PLAIN}pwnq"], tag="quota")


def _roots(r, mbox):
	"""Quota roots of the QUOTAROOT response for mbox."""
	d = r.data("QUOTAROOT")
	eq(len(d), 1, "one QUOTAROOT response: %r" % r.untagged)
	t = d[0]
	name = t[2].decode() if isinstance(t[2], bytes) else str(t[2])
	eq(name.upper() if mbox.upper() == "INBOX" else name, mbox, "QUOTAROOT mailbox name")
	return [x.decode() if isinstance(x, bytes) else str(x) for x in t[3:]]


def _quotas(r):
	"""{root: {RESOURCE: (usage, limit)}} of the QUOTA responses of r."""
	out = {}
	for t in r.data("QUOTA"):
		expect(len(t) == 4 and isinstance(t[3], list) and len(t[3]) % 3 == 0, "malformed QUOTA %r" % (t,))
		root = t[2].decode() if isinstance(t[2], bytes) else str(t[2])
		lst = t[3]
		out[root] = {str(lst[i]).upper(): (int(lst[i + 1]), int(lst[i + 2])) for i in range(0, len(lst), 3)}
	return out


def _storage(c, mbox="INBOX"):
	r = c.ok("GETQUOTAROOT " + quote(mbox))
	roots = _roots(r, mbox)
	q = _quotas(r)
	eq(sorted(q), sorted(roots), "a QUOTA response for every quota root of %s" % mbox)
	st = [q[x]["STORAGE"] for x in roots if "STORAGE" in q[x]]
	eq(len(st), 1, "one STORAGE quota governs %s: %r" % (mbox, q))
	return st[0], [x for x in roots if "STORAGE" in q[x]][0]


def _near(got, want_octets, what):
	want = want_octets / 1024.0
	expect(abs(got - want) <= 1.0, "%s: STORAGE usage %d KiB, want %.1f (+-1)" % (what, got, want))


def test_getquotaroot_without_quota(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "QUOTA"):
		return
	r = c.ok("GETQUOTAROOT INBOX")
	roots = _roots(r, "INBOX")
	q = _quotas(r)
	expect(set(q) <= set(roots), "QUOTA response for a root not in QUOTAROOT: %r" % r.untagged)
	for root, res in q.items():
		expect("STORAGE" not in res or res["STORAGE"][1] > 0, "a STORAGE limit of 0: %r" % res)
	for root in roots:
		r2 = c.ok("GETQUOTA " + quote(root))
		eq(sorted(_quotas(r2)), [root], "GETQUOTA %r" % root)
	c.ok("CREATE other")
	eq(_roots(c.ok("GETQUOTAROOT other"), "other"), roots, "quota roots of another mailbox")
	r = c.cmd("GETQUOTAROOT nosuchmailbox")
	eq(r.status, "NO", "GETQUOTAROOT of a missing mailbox (%r)" % r)
	r = c.cmd("GETQUOTA")
	eq(r.status, "BAD", "GETQUOTA without an argument (%r)" % r)


def test_quota_usage_and_overquota(ctx):
	srv = _quota_server(ctx)
	if srv is None:
		return
	c = lax(ctx.login_to(srv, User("qa", "pwqa")))
	need(ctx, c, "QUOTA", "QUOTA=RES-STORAGE")
	(used, limit), root = _storage(c)
	eq((used, limit), (0, LIMIT_K), "STORAGE of an empty account with quota=100K")
	r = c.ok("GETQUOTA " + quote(root))
	eq(_quotas(r)[root]["STORAGE"], (0, LIMIT_K), "GETQUOTA %r" % root)
	msgs = [message(subject="q%d" % i, body="x" * 20000 + "\n") for i in range(3)]
	for m in msgs:
		c.append("INBOX", m)
	total = sum(len(m) for m in msgs)
	(used, limit), _ = _storage(c)
	_near(used, total, "after 3 x 20 KB")
	# 50 KB more would exceed 100K: NO [OVERQUOTA], nothing stored.
	big = message(subject="big", body="y" * 50000 + "\n")
	r = c.cmd("APPEND INBOX ", Lit(big))
	eq((r.status, r.code_name()), ("NO", "OVERQUOTA"), "APPEND beyond the quota (%r)" % r)
	c.select("INBOX")
	eq(len(uids_of(c)), 3, "messages after the refused APPEND")
	_near(_storage(c)[0][0], total, "usage after the refused APPEND")
	# 30 KB still fits.
	fits = message(subject="fits", body="z" * 30000 + "\n")
	c.append("INBOX", fits)
	total += len(fits)
	_near(_storage(c)[0][0], total, "usage after an APPEND that fits")
	# COPY of everything would double the usage: refused, nothing copied.
	c.ok("CREATE other")
	r = c.cmd("COPY 1:* other")
	eq((r.status, r.code_name()), ("NO", "OVERQUOTA"), "COPY beyond the quota (%r)" % r)
	eq(statuses(c.ok("STATUS other (MESSAGES)"))["other"]["MESSAGES"], "0", "messages copied by a refused COPY")
	# MOVE inside the same quota root does not add usage.
	r = c.cmd("MOVE 1 other")
	expect(r.status == "OK" or r.code_name() == "OVERQUOTA", "MOVE within the quota root: %r" % r)
	_near(_storage(c)[0][0], total, "usage after MOVE within the quota root")
	# EXPUNGE frees space; then the big message fits.
	c.select("INBOX")
	c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE")
	left = len(msgs[0]) if r.status == "OK" else 0	# the moved message is in "other"
	_near(_storage(c)[0][0], left, "usage after EXPUNGE")
	c.append("INBOX", big)
	_near(_storage(c)[0][0], left + len(big), "usage after APPEND into freed space")


def test_quota_multiappend_all_or_nothing(ctx):
	srv = _quota_server(ctx)
	if srv is None:
		return
	c = lax(ctx.login_to(srv, User("qa", "pwqa")))
	if not need(ctx, c, "MULTIAPPEND"):
		return
	m1 = message(subject="m1", body="a" * 60000 + "\n")
	m2 = message(subject="m2", body="b" * 60000 + "\n")
	tag = c.next_tag()
	c.send(b"%s APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (tag.encode(), len(m1), m1, len(m2), m2))
	r = c.read_until(tag)
	eq((r.status, r.code_name()), ("NO", "OVERQUOTA"), "MULTIAPPEND whose second message exceeds the quota (%r)" % r)
	c.select("INBOX")
	eq(uids_of(c), [], "the first message of a refused MULTIAPPEND was kept")
	eq(_storage(c)[0][0], 0, "usage after the refused MULTIAPPEND")


def test_quota_deleted_storage_and_setquota(ctx):
	srv = _quota_server(ctx)
	if srv is None:
		return
	c = lax(ctx.login_to(srv, User("qa", "pwqa")))
	need(ctx, c, "QUOTA=RES-STORAGE")
	_used, root = _storage(c)
	r = c.cmd("SETQUOTA %s (STORAGE 512)" % quote(root))
	if "QUOTASET" not in {str(x).upper() for t in c.ok("CAPABILITY").data("CAPABILITY") for x in t[2:]}:
		expect(r.status in ("NO", "BAD"), "SETQUOTA without QUOTASET: %r" % r)
	eq(_storage(c)[0][1], LIMIT_K, "limit after SETQUOTA by the user")
	for i in range(2):
		c.append("INBOX", message(subject="d%d" % i, body="d" * 10000 + "\n"),
			 flags=["\\Deleted"] if i == 0 else None)
	r = c.ok("STATUS INBOX (MESSAGES DELETED-STORAGE)")
	st = statuses(r)["INBOX"]
	expect("DELETED-STORAGE" in st, "STATUS DELETED-STORAGE (RFC 9208 5.1) missing: %r" % r.untagged)
	ds = int(st["DELETED-STORAGE"])
	expect(9 <= ds <= 11, "DELETED-STORAGE %d KiB for one 10 KB \\Deleted message" % ds)


def test_quota_user_without_quota(ctx):
	srv = _quota_server(ctx)
	if srv is None:
		return
	c = lax(ctx.login_to(srv, User("nq", "pwnq")))
	r = c.ok("GETQUOTAROOT INBOX")
	for root, res in _quotas(r).items():
		expect("STORAGE" not in res, "a STORAGE quota for a user without quota=: %r" % r.untagged)
	c.append("INBOX", message(body="n" * 200000 + "\n"))
