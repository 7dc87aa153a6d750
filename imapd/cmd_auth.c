/* Commands of any state and of authentication: CAPABILITY, NOOP,
 * LOGOUT, STARTTLS, LOGIN, AUTHENTICATE, ID, ENABLE, NAMESPACE, IDLE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imapd.h"
#include "imapd/session.h"
#include "imapd/users.h"
#include "index/index.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/offload.h"
#include "lib/task.h"
#include "lib/util.h"
#include "imapd/imap_util.h"

void cmd_capability(struct cmd_ctx *cx)
{
	if (cx->nargs != 0) {
		session_tagged(cx->s, cx->tag, "BAD", NULL, "CAPABILITY takes no arguments");
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	session_capabilities(cx->s, &b);
	session_untagged(cx->s, "CAPABILITY %.*s", (int)buf_used(&b), (const char *)buf_head(&b));
	buf_deinit(&b);
	session_tagged(cx->s, cx->tag, "OK", NULL, "Capability completed");
}

void cmd_noop(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "NOOP takes no arguments");
		return;
	}
	if (s->acct != NULL) {
		const char *error = NULL;
		int ret = account_refresh(s->acct, &error);
		if (ret < 0) {
			session_tagged_error(s, cx->tag, ret, error, "NOOP");
			return;
		}
	}
	if (s->state == SESSION_SELECTED)
		session_sync(s, true);
	session_tagged(s, cx->tag, "OK", NULL, "NOOP completed");
}

void cmd_check(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	const char *error = NULL;
	if (cx->nargs != 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "CHECK takes no arguments");
		return;
	}
	int ret = account_refresh(s->acct, &error);
	if (ret < 0) {
		session_tagged_error(s, cx->tag, ret, error, "CHECK");
		return;
	}
	session_tagged(s, cx->tag, "OK", NULL, "CHECK completed");
}

void cmd_logout(struct cmd_ctx *cx)
{
	if (cx->nargs != 0) {
		session_tagged(cx->s, cx->tag, "BAD", NULL, "LOGOUT takes no arguments");
		return;
	}
	session_untagged(cx->s, "BYE Logging out");
	session_tagged(cx->s, cx->tag, "OK", NULL, "Logout completed");
	cx->s->state = SESSION_LOGOUT;
	conn_close_after_output(cx->s->conn);
}

void cmd_starttls(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "STARTTLS takes no arguments");
		return;
	}
	if (conn_is_tls(s->conn)) {
		session_tagged(s, cx->tag, "BAD", NULL, "TLS is already active");
		return;
	}
	if (s->srv->tls == NULL) {
		session_tagged(s, cx->tag, "NO", NULL, "TLS is not configured");
		return;
	}
	session_tagged(s, cx->tag, "OK", NULL, "Begin TLS negotiation now");
	conn_start_tls(s->conn);
}

static bool plaintext_ok(struct session *s)
{
	if (conn_is_tls(s->conn))
		return true;
	switch (s->srv->set.plaintext_auth) {
	case PLAINTEXT_AUTH_ALWAYS:
		return true;
	case PLAINTEXT_AUTH_LOOPBACK:
		return s->conn->peer_loopback;
	default:
		return false;
	}
}

struct verify_job {
	struct users *users;
	struct kstr user, pass;
};

static int verify_run(void *arg)
{
	struct verify_job *j = arg;
	return users_verify(j->users, j->user, j->pass.p, j->pass.len) ? 1 : 0;
}

/* Checks the password; on success schedules the account load and the
 * tagged reply (possibly on another worker), else answers NO. */
static void auth_attempt(struct cmd_ctx *cx, struct kstr user, struct kstr pass)
{
	struct session *s = cx->s;
	struct conn *c = s->conn;
	char esc[96];
	const char *rerr = NULL;
	if (users_reload_if_changed(s->srv->users, &rerr) < 0)
		log_warn("event=users-reload-failed error=\"%s\"", rerr ? rerr : "");
	/* A password hash costs milliseconds of CPU: not on the loop. */
	struct verify_job vj = { s->srv->users, user, pass };
	bool ok = users_name_is_valid(user) && offload_run(verify_run, &vj) == 1;
	if (!ok) {
		c->auth_failures++;
		log_info("event=auth-failed conn=%llu peer=%s user=\"%s\" failures=%u",
			 (unsigned long long)c->id, c->peer,
			 log_escape(user.p, user.len, esc, sizeof(esc)), c->auth_failures);
		/* Slow down guessing without holding anything but this task. */
		task_sleep_ms(250);
		if (c->auth_failures >= s->srv->set.max_auth_failures) {
			session_untagged(s, "BYE Too many authentication failures");
			session_tagged(s, cx->tag, "NO", "AUTHENTICATIONFAILED",
				       "Authentication failed");
			conn_close_after_output(c);
			return;
		}
		session_tagged(s, cx->tag, "NO", "AUTHENTICATIONFAILED", "Authentication failed");
		return;
	}
	s->login_tag = kstr_dup(cx->tag);
	s->login_user = kstr_dup(user);
	s->want_handoff = true;
}

void cmd_login(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 2 || !arg_is_astring(&cx->args[0]) || !arg_is_astring(&cx->args[1])) {
		session_tagged(s, cx->tag, "BAD", NULL, "LOGIN needs a user name and a password");
		return;
	}
	if (!plaintext_ok(s)) {
		session_tagged(s, cx->tag, "NO", "PRIVACYREQUIRED",
			       "Plaintext authentication is disabled; use STARTTLS");
		return;
	}
	auth_attempt(cx, cx->args[0].str, cx->args[1].str);
}

static int b64val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (padding required) into arena memory. */
static bool b64_decode(struct arena *a, struct kstr in, struct kstr *out_r)
{
	if (in.len % 4 != 0)
		return false;
	uint8_t *out = arena_alloc(a, in.len / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < in.len; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			if (in.p[i + k] == '=' && i + 4 == in.len && k >= 2) {
				v[k] = -2;
			} else {
				v[k] = b64val(in.p[i + k]);
				if (v[k] < 0)
					return false;
			}
		}
		if (v[2] == -2 && v[3] != -2)
			return false;
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (v[2] != -2)
			out[o++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
		if (v[3] != -2 && v[2] != -2)
			out[o++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
	}
	*out_r = kstr_make(out, o);
	return true;
}

void cmd_authenticate(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs < 1 || cx->nargs > 2 || cx->args[0].type != IMAP_ARG_ATOM) {
		session_tagged(s, cx->tag, "BAD", NULL, "AUTHENTICATE needs a mechanism");
		return;
	}
	if (!kstr_eq_ci(cx->args[0].str, "PLAIN")) {
		session_tagged(s, cx->tag, "NO", "CANNOT", "Unsupported authentication mechanism");
		return;
	}
	if (!plaintext_ok(s)) {
		session_tagged(s, cx->tag, "NO", "PRIVACYREQUIRED",
			       "Plaintext authentication is disabled; use STARTTLS");
		return;
	}
	struct kstr resp;
	if (cx->nargs == 2) {
		if (!arg_is_astring(&cx->args[1])) {
			session_tagged(s, cx->tag, "BAD", NULL, "Invalid initial response");
			return;
		}
		resp = cx->args[1].str;
		if (kstr_eq(resp, KSTR_LIT("=")))
			resp = kstr_make("", 0);
	} else {
		conn_printf(s->conn, "+ \r\n");
		if (conn_read_line(s->conn, 8192, &resp) < 0) {
			session_tagged(s, cx->tag, "BAD", NULL, "Authentication line too long");
			return;
		}
		if (kstr_eq(resp, KSTR_LIT("*"))) {
			session_tagged(s, cx->tag, "BAD", NULL, "Authentication cancelled");
			return;
		}
	}
	struct kstr dec;
	if (!b64_decode(cx->a, resp, &dec)) {
		session_tagged(s, cx->tag, "BAD", NULL, "Invalid base64 data");
		return;
	}
	/* authzid NUL authcid NUL password */
	const uint8_t *p = dec.p, *end = dec.p + dec.len;
	const uint8_t *z1 = memchr(p, '\0', dec.len);
	const uint8_t *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)(end - z1 - 1)) : NULL;
	if (z1 == NULL || z2 == NULL) {
		session_tagged(s, cx->tag, "BAD", NULL, "Malformed PLAIN response");
		return;
	}
	struct kstr authz = kstr_make(p, (size_t)(z1 - p));
	struct kstr authc = kstr_make(z1 + 1, (size_t)(z2 - z1 - 1));
	struct kstr pass = kstr_make(z2 + 1, (size_t)(end - z2 - 1));
	if (authz.len > 0 && !kstr_eq(authz, authc)) {
		session_tagged(s, cx->tag, "NO", "AUTHORIZATIONFAILED",
			       "Proxy authorization is not supported");
		return;
	}
	auth_attempt(cx, authc, pass);
}

void cmd_id(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 1 || !(arg_is_atom(&cx->args[0], "NIL") ||
				cx->args[0].type == IMAP_ARG_LIST)) {
		session_tagged(s, cx->tag, "BAD", NULL, "ID needs NIL or a list");
		return;
	}
	const struct imap_arg *l = &cx->args[0];
	if (l->type == IMAP_ARG_LIST) {
		if (l->list_count % 2 != 0 || l->list_count > 60) {
			session_tagged(s, cx->tag, "BAD", NULL, "Invalid ID parameter list");
			return;
		}
		char line[512];
		size_t o = 0;
		for (size_t i = 0; i < l->list_count; i++) {
			const struct imap_arg *v = &l->list[i];
			char esc[64];
			if (v->type == IMAP_ARG_LIST) {
				session_tagged(s, cx->tag, "BAD", NULL, "Invalid ID parameter list");
				return;
			}
			int n = snprintf(line + o, sizeof(line) - o, "%s%s", i % 2 ? "=" : " ",
					 log_escape(v->str.p, v->str.len, esc, sizeof(esc)));
			if (n > 0 && (size_t)n < sizeof(line) - o)
				o += (size_t)n;
		}
		line[o] = '\0';
		log_info("event=id conn=%llu client=\"%s\"", (unsigned long long)s->conn->id, line);
	}
	session_untagged(s, "ID (\"name\" \"kura\" \"version\" \"0.1\")");
	session_tagged(s, cx->tag, "OK", NULL, "ID completed");
}

void cmd_enable(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs == 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "ENABLE needs capability names");
		return;
	}
	for (size_t i = 0; i < cx->nargs; i++) {
		if (cx->args[i].type != IMAP_ARG_ATOM) {
			session_tagged(s, cx->tag, "BAD", NULL, "ENABLE takes capability names");
			return;
		}
	}
	/* Unknown capabilities are ignored (RFC 5161); the response lists
	 * only what this command newly enabled. */
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "ENABLED");
	for (size_t i = 0; i < cx->nargs; i++) {
		struct kstr n = cx->args[i].str;
		bool *flag = NULL;
		const char *name = NULL;
		if (kstr_eq_ci(n, "CONDSTORE")) {
			flag = &s->condstore;
			name = "CONDSTORE";
		} else if (kstr_eq_ci(n, "QRESYNC")) {
			flag = &s->qresync;
			name = "QRESYNC";
		} else if (kstr_eq_ci(n, "IMAP4rev2")) {
			flag = &s->rev2;
			name = "IMAP4rev2";
		} else if (kstr_eq_ci(n, "UTF8=ACCEPT")) {
			flag = &s->utf8_enabled;
			name = "UTF8=ACCEPT";
		}
		if (flag == NULL || *flag)
			continue;
		*flag = true;
		buf_printf(&b, " %s", name);
		if (flag == &s->qresync && !s->condstore) {
			/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3). */
			s->condstore = true;
		}
	}
	session_untagged(s, "%s", buf_cstr(&b));
	buf_deinit(&b);
	session_tagged(s, cx->tag, "OK", NULL, "ENABLE completed");
}

void cmd_namespace(struct cmd_ctx *cx)
{
	if (cx->nargs != 0) {
		session_tagged(cx->s, cx->tag, "BAD", NULL, "NAMESPACE takes no arguments");
		return;
	}
	session_untagged(cx->s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	session_tagged(cx->s, cx->tag, "OK", NULL, "NAMESPACE completed");
}

void cmd_idle(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "IDLE takes no arguments");
		return;
	}
	if (s->state == SESSION_SELECTED)
		session_sync(s, true);
	conn_printf(s->conn, "+ idling\r\n");
	conn_idle_begin(s->conn, cx->tag);
}

/* QUOTA (RFC 9208): one root "" per user, with the STORAGE resource in
 * KiB; limits come from the users file and cannot be set over IMAP. */
static void write_quota(struct session *s)
{
	uint64_t used = (session_usage(s) + 1023) / 1024;
	if (s->quota == 0)
		session_untagged(s, "QUOTA \"\" ()");
	else
		session_untagged(s, "QUOTA \"\" (STORAGE %llu %llu)", (unsigned long long)used,
				 (unsigned long long)(s->quota / 1024));
}

void cmd_getquota(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 1 || !arg_is_astring(&cx->args[0])) {
		session_tagged(s, cx->tag, "BAD", NULL, "GETQUOTA needs a quota root");
		return;
	}
	if (cx->args[0].str.len != 0) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "No such quota root");
		return;
	}
	write_quota(s);
	session_tagged(s, cx->tag, "OK", NULL, "GETQUOTA completed");
}

void cmd_getquotaroot(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	if (cx->nargs != 1 || !arg_mailbox(cx, &cx->args[0], &name)) {
		session_tagged(s, cx->tag, "BAD", NULL, "GETQUOTAROOT needs a mailbox");
		return;
	}
	if (account_mailbox_find(s->acct, name) == NULL) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Mailbox does not exist");
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* QUOTAROOT ");
	imap_write_astring(&b, name);
	buf_append_str(&b, " \"\"\r\n");
	conn_write(s->conn, buf_head(&b), buf_used(&b));
	buf_deinit(&b);
	write_quota(s);
	session_tagged(s, cx->tag, "OK", NULL, "GETQUOTAROOT completed");
}

void cmd_setquota(struct cmd_ctx *cx)
{
	session_tagged(cx->s, cx->tag, "NO", "NOPERM",
		       "Quotas are set by the administrator");
}

/* COMPRESS DEFLATE (RFC 4978). */
void cmd_compress(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 1 || cx->args[0].type != IMAP_ARG_ATOM) {
		session_tagged(s, cx->tag, "BAD", NULL, "COMPRESS needs a mechanism");
		return;
	}
	if (!kstr_eq_ci(cx->args[0].str, "DEFLATE")) {
		session_tagged(s, cx->tag, "BAD", NULL, "Unknown compression mechanism");
		return;
	}
	if (conn_is_compressed(s->conn)) {
		session_tagged(s, cx->tag, "NO", "COMPRESSIONACTIVE", "DEFLATE is already active");
		return;
	}
	session_tagged(s, cx->tag, "OK", NULL, "DEFLATE active");
	conn_start_compress(s->conn);
}
