"""A real synchronising client: isync's mbsync against a 300-message tree,
both directions, checked message by message (bytes and flags)."""

import email.policy
import email.utils
import imaplib
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from email.message import EmailMessage

from integlib import (Fail, eq, expect, list_mailboxes, message_id, quote)

FOLDERS = {"INBOX": 150, "Work": 60, "Archive": 50, "Archive/2023": 40}
MAILDIR_FLAGS = {"D": "\\draft", "F": "\\flagged", "R": "\\answered", "S": "\\seen", "T": "\\deleted"}


def make_message(rng, folder, i):
	m = EmailMessage(policy=email.policy.SMTP)
	m["From"] = rng.choice(["Alice <alice@example.org>", "\u00c9lodie <elodie@example.fr>",
				"bob@example.net", '"Doe, John" <john@example.com>'])
	m["To"] = "user@example.org"
	if i % 7 == 0:
		m["Cc"] = "Carol <carol@example.com>, dave@example.com"
	m["Subject"] = rng.choice(["Report %d", "Gr\u00fc\u00dfe %d", "\u65e5\u672c\u8a9e %d",
				   "Re: thread %d", "A rather long subject line that will need folding "
				   "when it is encoded by the generator, number %d"]) % i
	m["Date"] = email.utils.format_datetime(
		email.utils.localtime().replace(year=2022, month=1 + i % 12, day=1 + i % 28))
	m["Message-ID"] = "<%s.%d.%d@mbsync.test>" % (folder.replace("/", "-"), i, rng.randrange(1 << 30))
	text = "Hello,\n\n" + "\n".join("Line %d of message %d in %s, caf\u00e9." % (k, i, folder)
					for k in range(rng.randrange(1, 40))) + "\n"
	kind = i % 5
	if kind == 0:
		m.set_content(text)
	elif kind == 1:
		m.set_content(text)
		m.add_alternative("<html><body><p>%s</p></body></html>\n" % text.replace("\n", "<br>"),
				  subtype="html")
	elif kind == 2:
		m.set_content(text)
		m.add_attachment(rng.randbytes(rng.randrange(100, 40000)), maintype="application",
				 subtype="octet-stream", filename="blob%d.bin" % i)
	elif kind == 3:
		m.set_content(text)
		inner = EmailMessage(policy=email.policy.SMTP)
		inner["From"] = "inner@example.org"
		inner["Subject"] = "forwarded %d" % i
		inner.set_content("forwarded body\n")
		m.add_attachment(inner)
	else:
		m.set_content(text.encode("latin-1", "replace"), maintype="text", subtype="plain",
			      cte="quoted-printable")
	raw = m.as_bytes(policy=email.policy.SMTP)
	return raw


def flags_for(i):
	return [[], ["\\Seen"], ["\\Seen", "\\Flagged"], ["\\Answered", "\\Seen"], [], ["\\Draft"]][i % 6]


def upload(c, folder, msgs):
	"""Pipelined APPENDs with LITERAL+; returns the APPENDUIDs."""
	uids = []
	for start in range(0, len(msgs), 25):
		batch = msgs[start:start + 25]
		data = b""
		tags = []
		for k, (raw, flags) in enumerate(batch):
			tag = "U%d" % (start + k)
			tags.append(tag)
			data += b"%s APPEND %s (%s) {%d+}\r\n%s\r\n" % (
				tag.encode(), quote(folder).encode(), " ".join(flags).encode(), len(raw), raw)
		c.send(data)
		for tag in tags:
			r = c.read_until(tag)
			if r.status != "OK":
				raise Fail("APPEND to %s -> %r" % (folder, r))
	return uids


def mbsyncrc(ctx, user, maildir, tls="STARTTLS"):
	port = ctx.tls_port if tls == "IMAPS" else ctx.port
	return """IMAPAccount test
Host 127.0.0.1
Port {port}
User {user}
Pass {pw}
SSLType {tls}
CertificateFile {cert}
AuthMechs LOGIN
PipelineDepth 10
Timeout 60

IMAPStore remote
Account test

MaildirStore local
Path {md}/
Inbox {md}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""".format(port=port, user=user.name, pw=user.password, tls=tls, cert=ctx.cert, md=maildir)


def run_mbsync(ctx, rc):
	if not shutil.which("mbsync"):
		raise Fail("mbsync is not installed (apt-get install isync)")
	p = subprocess.run(["mbsync", "-c", rc, "-a"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
			   timeout=300)
	out = p.stdout.decode("utf-8", "replace")
	if p.returncode != 0:
		raise Fail("mbsync exited %d: %s" % (p.returncode, " | ".join(out.strip().splitlines()[-12:])))
	return out


def folder_dir(maildir, folder):
	return os.path.join(maildir, folder)


def read_maildir(path):
	"""{message-id: (flags set, bytes, file path)} of one Maildir."""
	out = {}
	for sub in ("cur", "new"):
		d = os.path.join(path, sub)
		if not os.path.isdir(d):
			continue
		for fn in os.listdir(d):
			p = os.path.join(d, fn)
			with open(p, "rb") as f:
				data = f.read()
			flags = set()
			if ":2," in fn:
				flags = {MAILDIR_FLAGS[ch] for ch in fn.split(":2,", 1)[1] if ch in MAILDIR_FLAGS}
			mid = message_id(data)
			if mid in out:
				raise Fail("Message-ID %s twice in %s" % (mid, path))
			out[mid] = (flags, data, p)
	return out


def server_folder(m, folder):
	"""{message-id: (flags set, bytes)} of a server mailbox, read with
	imaplib (a second, independent client)."""
	typ, data = m.select(quote(folder), readonly=True)
	if typ != "OK":
		raise Fail("imaplib EXAMINE %s -> %s %r" % (folder, typ, data))
	out = {}
	if data[0] == b"0":
		return out
	typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[])")
	if typ != "OK":
		raise Fail("imaplib FETCH in %s -> %s %r" % (folder, typ, data))
	for item in data:
		if not isinstance(item, tuple):
			continue
		head, body = item
		flags = {f.decode().lower() for f in imaplib.ParseFlags(head)} - {"\\recent"}
		mid = message_id(body)
		if mid in out:
			raise Fail("Message-ID %s twice in server folder %s" % (mid, folder))
		out[mid] = (flags, body)
	m.close()
	return out


def strip_tuid(data):
	return re.sub(rb"(?im)^X-TUID: [^\r\n]*\r?\n", b"", data, count=1)


def same_bytes(server, local):
	"""mbsync stores LF line ends locally and sends CRLF; it may add an
	X-TUID header while uploading."""
	a = strip_tuid(server).replace(b"\r\n", b"\n")
	b = strip_tuid(local).replace(b"\r\n", b"\n")
	return a == b


def compare(m, maildir, folders, what):
	probs = []
	for folder in folders:
		srv = server_folder(m, folder)
		loc = read_maildir(folder_dir(maildir, folder))
		if set(srv) != set(loc):
			probs.append("%s %s: only on server %d %r, only local %d %r" % (
				what, folder, len(set(srv) - set(loc)), sorted(set(srv) - set(loc))[:3],
				len(set(loc) - set(srv)), sorted(set(loc) - set(srv))[:3]))
		for mid in sorted(set(srv) & set(loc)):
			sf, sb = srv[mid]
			lf, lb, path = loc[mid]
			if sf != lf:
				probs.append("%s %s %s: server flags %r, maildir %r" % (what, folder, mid, sorted(sf), sorted(lf)))
			if not same_bytes(sb, lb):
				probs.append("%s %s %s: bytes differ (server %d, maildir %d)" % (what, folder, mid, len(sb), len(lb)))
		if len(probs) > 10:
			break
	if probs:
		raise Fail("; ".join(probs[:10]))


def set_maildir_flags(path, flags):
	d, fn = os.path.split(path)
	base = fn.split(":2,", 1)[0]
	letters = "".join(sorted(k for k, v in MAILDIR_FLAGS.items() if v in flags))
	new = os.path.join(os.path.dirname(d), "cur", base + ":2," + letters)
	os.rename(path, new)


def add_maildir_message(path, raw, flags=""):
	name = "%d.%d_%d.integ" % (time.time(), os.getpid(), random.randrange(1 << 30))
	sub = "cur" if flags else "new"
	os.makedirs(os.path.join(path, sub), exist_ok=True)
	for s in ("cur", "new", "tmp"):
		os.makedirs(os.path.join(path, s), exist_ok=True)
	fn = os.path.join(path, sub, name + ((":2," + flags) if flags else ""))
	with open(fn, "wb") as f:
		f.write(raw.replace(b"\r\n", b"\n"))


def test_mbsync_full_cycle(ctx):
	rng = random.Random(20240601)
	u = ctx.user()
	c = ctx.login(u)
	existing = set(list_mailboxes(c))	# a new account may have defaults
	for folder in FOLDERS:
		if folder not in existing:
			c.ok("CREATE ", quote(folder))
	total = 0
	for folder, n in FOLDERS.items():
		msgs = [(make_message(rng, folder, i), flags_for(i)) for i in range(n)]
		upload(c, folder, msgs)
		total += n
	eq(total, 300, "fixture size")
	work = tempfile.mkdtemp(prefix="mbsync-")
	try:
		md = os.path.join(work, "mail")
		os.makedirs(md)
		rc = os.path.join(work, "mbsyncrc")
		with open(rc, "w") as f:
			f.write(mbsyncrc(ctx, u, md))
		# 1: server -> empty Maildir
		m = ctx.imap_login(u)
		run_mbsync(ctx, rc)
		compare(m, md, FOLDERS, "initial sync")

		# 2: local changes -> server
		inbox = read_maildir(folder_dir(md, "INBOX"))
		mids = sorted(inbox)
		for mid in mids[:10]:
			fl, _b, p = inbox[mid]
			set_maildir_flags(p, fl | {"\\seen"})
		for mid in mids[10:15]:
			fl, _b, p = read_maildir(folder_dir(md, "INBOX"))[mid]
			set_maildir_flags(p, fl | {"\\flagged"})
		for mid in mids[15:20]:
			fl, _b, p = read_maildir(folder_dir(md, "INBOX"))[mid]
			set_maildir_flags(p, fl - {"\\seen", "\\flagged"})
		for mid in mids[20:25]:
			os.unlink(read_maildir(folder_dir(md, "INBOX"))[mid][2])
		for i in range(5):
			add_maildir_message(folder_dir(md, "INBOX"), make_message(rng, "local-inbox", i),
					    "S" if i % 2 else "")
		work_md = read_maildir(folder_dir(md, "Work"))
		for mid in sorted(work_md)[:3]:
			os.unlink(work_md[mid][2])
		for i in range(2):
			add_maildir_message(folder_dir(md, "Work"), make_message(rng, "local-work", i), "F")
		for i in range(3):
			add_maildir_message(folder_dir(md, "FromLocal"), make_message(rng, "from-local", i))
		run_mbsync(ctx, rc)
		folders = list(FOLDERS) + ["FromLocal"]
		expect("FromLocal" in list_mailboxes(c), "mbsync did not create FromLocal on the server")
		compare(m, md, folders, "after local changes")
		st = {f: len(read_maildir(folder_dir(md, f))) for f in folders}
		eq(st, {"INBOX": 150, "Work": 59, "Archive": 50, "Archive/2023": 40, "FromLocal": 3},
		   "message counts after local changes")

		# 3: server changes -> Maildir
		c.ok("SELECT INBOX")
		c.ok("STORE 1:5 +FLAGS (\\Flagged)")
		c.ok("STORE 6:8 +FLAGS (\\Deleted)")
		c.ok("EXPUNGE")
		c.ok("UNSELECT")
		upload(c, "Archive", [(make_message(rng, "server-new", i), ["\\Seen"]) for i in range(4)])
		run_mbsync(ctx, rc)
		compare(m, md, folders, "after server changes")
		eq(len(read_maildir(folder_dir(md, "Archive"))), 54, "Archive after server APPENDs")
		eq(len(read_maildir(folder_dir(md, "INBOX"))), 147, "INBOX after server EXPUNGE")

		# 4: nothing changed: a sync changes nothing
		before = {f: read_maildir(folder_dir(md, f)) for f in folders}
		run_mbsync(ctx, rc)
		after = {f: read_maildir(folder_dir(md, f)) for f in folders}
		eq({f: {m: (v[0], v[1]) for m, v in d.items()} for f, d in after.items()},
		   {f: {m: (v[0], v[1]) for m, v in d.items()} for f, d in before.items()},
		   "an idle sync changed the Maildir")
	finally:
		shutil.rmtree(work, ignore_errors=True)


test_mbsync_full_cycle.timeout = 600


def test_mbsync_implicit_tls(ctx):
	rng = random.Random(7)
	u = ctx.user()
	c = ctx.login(u)
	upload(c, "INBOX", [(make_message(rng, "tls", i), flags_for(i)) for i in range(20)])
	work = tempfile.mkdtemp(prefix="mbsync-")
	try:
		md = os.path.join(work, "mail")
		os.makedirs(md)
		rc = os.path.join(work, "mbsyncrc")
		with open(rc, "w") as f:
			f.write(mbsyncrc(ctx, u, md, tls="IMAPS"))
		run_mbsync(ctx, rc)
		compare(ctx.imap_login(u), md, ["INBOX"], "implicit TLS sync")
	finally:
		shutil.rmtree(work, ignore_errors=True)


test_mbsync_implicit_tls.timeout = 300
