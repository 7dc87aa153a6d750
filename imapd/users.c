#include "imapd/users.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/util.h"

struct user_entry {
	char *name;
	size_t name_len;
	char *secret;
	enum users_scheme scheme;
	uint64_t quota;
};

/* An immutable table: replaced whole on reload, never edited. */
struct user_table {
	struct user_entry *v;
	size_t count, cap;
	size_t *slots;		/* open addressing: entry index + 1, 0 = empty */
	size_t nslots;		/* power of two, > 2 * count */
	/* Hash of the file's first crypt user: unknown names are checked
	 * against it so they cost the same time. NULL when there is none. */
	const char *dummy;
};

struct users {
	char *path;
	pthread_mutex_t reload_lock;	/* one reloader at a time */
	pthread_rwlock_t lock;		/* guards t */
	struct user_table *t;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	/* The version of the file that failed to load, reported once. */
	bool failed;
	struct stat failed_st;
};

static __thread char errbuf[512];

__attribute__((format(printf, 1, 2)))
static const char *fmt_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return errbuf;
}

static const char *scheme_names[] = {
	"PLAIN", "SHA512-CRYPT", "YESCRYPT", "CRYPT",
};

const char *users_scheme_name(enum users_scheme scheme)
{
	return (unsigned)scheme < ARRAY_SIZE(scheme_names) ?
		scheme_names[scheme] : "?";
}

int users_scheme_parse(const char *s, enum users_scheme *scheme_r)
{
	for (size_t i = 0; i < ARRAY_SIZE(scheme_names); i++) {
		if (strcasecmp(s, scheme_names[i]) == 0) {
			*scheme_r = (enum users_scheme)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool users_name_is_valid(struct kstr name)
{
	if (name.len == 0 || name.len > USERS_NAME_MAX)
		return false;
	if ((name.len == 1 && name.p[0] == '.') ||
	    (name.len == 2 && name.p[0] == '.' && name.p[1] == '.'))
		return false;
	for (size_t i = 0; i < name.len; i++) {
		uint8_t c = name.p[i];
		if (c <= 0x20 || c >= 0x7f || c == ':' || c == '/')
			return false;
	}
	return true;
}

static bool parse_quota(const char *s, uint64_t *val_r)
{
	size_t digits = strspn(s, "0123456789");
	uint64_t v;
	if (digits == 0 || !kstr_to_u64(kstr_make(s, digits), &v))
		return false;
	unsigned shift = 0;
	switch (s[digits]) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return false;
	}
	if (shift != 0 && (s[digits + 1] != '\0' || v > (UINT64_MAX >> shift)))
		return false;
	*val_r = v << shift;
	return true;
}

static bool secret_chars_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((uint8_t)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/* Parses one line (NUL-terminated, newline stripped) in place. Returns 1
 * with *e filled (pointers into line), 0 for a blank or comment line,
 * -EINVAL with *reason_r. */
static int parse_entry(char *line, struct user_entry *e, const char **reason_r)
{
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;

	char *colon = strchr(line, ':');
	if (colon == NULL) {
		*reason_r = "expected name:{SCHEME}secret";
		return -EINVAL;
	}
	if (!users_name_is_valid(kstr_make(line, (size_t)(colon - line)))) {
		*reason_r = "bad user name (1-255 printable ASCII characters, "
			"no ':', '/' or space)";
		return -EINVAL;
	}
	*colon = '\0';
	e->name = line;
	e->name_len = (size_t)(colon - line);

	char *scheme = colon + 1;
	char *close = scheme[0] == '{' ? strchr(scheme, '}') : NULL;
	if (close == NULL) {
		*reason_r = "expected {SCHEME} after the name";
		return -EINVAL;
	}
	*close = '\0';
	if (users_scheme_parse(scheme + 1, &e->scheme) < 0) {
		*reason_r = "unknown scheme (PLAIN, SHA512-CRYPT, YESCRYPT, CRYPT)";
		return -EINVAL;
	}

	char *secret = close + 1;
	e->quota = 0;
	char *last = strrchr(secret, ':');
	if (last != NULL && strncmp(last + 1, "quota=", 6) == 0) {
		if (!parse_quota(last + 7, &e->quota)) {
			*reason_r = "bad quota (bytes, K/M/G/T suffix allowed)";
			return -EINVAL;
		}
		*last = '\0';
	} else if (last != NULL && e->scheme != USERS_SCHEME_PLAIN) {
		*reason_r = "unknown field after the secret";
		return -EINVAL;
	}
	if (secret[0] == '\0' || !secret_chars_ok(secret)) {
		*reason_r = "empty secret or control character in it";
		return -EINVAL;
	}
	e->secret = secret;

	if (e->scheme == USERS_SCHEME_PLAIN)
		return 1;
	const char *want = e->scheme == USERS_SCHEME_SHA512_CRYPT ? "$6$" :
		e->scheme == USERS_SCHEME_YESCRYPT ? "$y$" : NULL;
	if (want != NULL && strncmp(secret, want, 3) != 0) {
		*reason_r = e->scheme == USERS_SCHEME_SHA512_CRYPT ?
			"SHA512-CRYPT hash must start with $6$" :
			"YESCRYPT hash must start with $y$";
		return -EINVAL;
	}
	int cs = crypt_checksalt(secret);
	if (cs != CRYPT_SALT_OK && cs != CRYPT_SALT_METHOD_LEGACY &&
	    cs != CRYPT_SALT_TOO_CHEAP) {
		*reason_r = "hash not supported by this system's libcrypt";
		return -EINVAL;
	}
	return 1;
}

static void table_free(struct user_table **tp)
{
	struct user_table *t = *tp;
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->count; i++) {
		free(t->v[i].name);
		explicit_bzero(t->v[i].secret, strlen(t->v[i].secret));
		free(t->v[i].secret);
	}
	free(t->v);
	free(t->slots);
	free(t);
	*tp = NULL;
}

static size_t *table_slot(const struct user_table *t, struct kstr name)
{
	size_t mask = t->nslots - 1;
	size_t i = (size_t)hash64(name.p, name.len) & mask;
	for (;;) {
		size_t s = t->slots[i];
		if (s == 0)
			return &t->slots[i];
		const struct user_entry *e = &t->v[s - 1];
		if (e->name_len == name.len &&
		    memcmp(e->name, name.p, name.len) == 0)
			return &t->slots[i];
		i = (i + 1) & mask;
	}
}

static const struct user_entry *table_find(const struct user_table *t,
					   struct kstr name)
{
	if (t->count == 0)
		return NULL;
	size_t s = *table_slot(t, name);
	return s == 0 ? NULL : &t->v[s - 1];
}

static void table_index(struct user_table *t)
{
	size_t n = 16;
	while (n <= 2 * t->count)
		n *= 2;
	free(t->slots);
	t->slots = xcalloc(n, sizeof(*t->slots));
	t->nslots = n;
	for (size_t i = 0; i < t->count; i++) {
		size_t *slot = table_slot(t, kstr_make(t->v[i].name,
						       t->v[i].name_len));
		*slot = i + 1;
	}
}

/* Reads a whole file into a malloc'ed NUL-terminated buffer. */
static int read_file(const char *path, char **data_r, size_t *len_r,
		     struct stat *st_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st_r) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	size_t cap = st_r->st_size > 0 ? (size_t)st_r->st_size + 1 : 4096;
	size_t len = 0;
	char *data = xmalloc(cap);
	for (;;) {
		if (cap - len < 2) {
			cap *= 2;
			data = xrealloc(data, cap);
		}
		ssize_t n = read(fd, data + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;
			free(data);
			close(fd);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

/* Iterates over lines: returns the next line NUL-terminated in place
 * (without "\n" or "\r\n"), or NULL at the end. */
static char *next_line(char **pos, char *end, bool *had_nl_r)
{
	char *s = *pos;
	if (s >= end)
		return NULL;
	char *nl = memchr(s, '\n', (size_t)(end - s));
	char *e = nl != NULL ? nl : end;
	*pos = nl != NULL ? nl + 1 : end;
	*had_nl_r = nl != NULL;
	if (e > s && e[-1] == '\r')
		e--;
	*e = '\0';
	return s;
}

/* Parses file contents into a new table. */
static int table_parse(const char *path, char *data, size_t len,
		       struct user_table **t_r, const char **error_r)
{
	struct user_table *t = xcalloc(1, sizeof(*t));
	char *pos = data, *end = data + len, *line;
	unsigned lineno = 0;
	bool nl;

	if (memchr(data, '\0', len) != NULL) {
		*error_r = fmt_error("%s: NUL byte in file", path);
		table_free(&t);
		return -EINVAL;
	}
	while ((line = next_line(&pos, end, &nl)) != NULL) {
		struct user_entry e;
		const char *reason;
		lineno++;
		int r = parse_entry(line, &e, &reason);
		if (r < 0) {
			*error_r = fmt_error("%s:%u: %s", path, lineno, reason);
			table_free(&t);
			return -EINVAL;
		}
		if (r == 0)
			continue;
		xgrow((void **)&t->v, &t->cap, t->count + 1, sizeof(*t->v));
		struct user_entry *ne = &t->v[t->count++];
		*ne = e;
		ne->name = xstrdup(e.name);
		ne->secret = xstrdup(e.secret);
		if (t->dummy == NULL && e.scheme != USERS_SCHEME_PLAIN)
			t->dummy = ne->secret;
	}
	table_index(t);
	/* Duplicates are found after indexing: a name whose slot points at
	 * an earlier entry. */
	for (size_t i = 0; i < t->count; i++) {
		size_t s = *table_slot(t, kstr_make(t->v[i].name,
						    t->v[i].name_len));
		if (s != i + 1) {
			*error_r = fmt_error("%s: user '%s' is listed twice",
					     path, t->v[i].name);
			table_free(&t);
			return -EINVAL;
		}
	}
	*t_r = t;
	return 0;
}

static int load_table(const char *path, struct user_table **t_r,
		      struct stat *st_r, const char **error_r)
{
	char *data;
	size_t len;
	int r = read_file(path, &data, &len, st_r);
	if (r < 0) {
		*error_r = fmt_error("%s: cannot read users file: %s", path,
				     strerror(-r));
		return r;
	}
	r = table_parse(path, data, len, t_r, error_r);
	explicit_bzero(data, len);
	free(data);
	return r;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void remember_stat(struct users *u, const struct stat *st)
{
	u->dev = st->st_dev;
	u->ino = st->st_ino;
	u->size = st->st_size;
	u->mtime = st->st_mtim;
}

int users_load(const char *path, struct users **users_r,
	       const char **error_r)
{
	struct user_table *t;
	struct stat st;
	int r = load_table(path, &t, &st, error_r);
	if (r < 0)
		return r;
	struct users *u = xcalloc(1, sizeof(*u));
	u->path = xstrdup(path);
	pthread_mutex_init(&u->reload_lock, NULL);
	pthread_rwlock_init(&u->lock, NULL);
	u->t = t;
	remember_stat(u, &st);
	*users_r = u;
	return 0;
}

void users_destroy(struct users **users)
{
	struct users *u = *users;
	if (u == NULL)
		return;
	table_free(&u->t);
	pthread_rwlock_destroy(&u->lock);
	pthread_mutex_destroy(&u->reload_lock);
	free(u->path);
	free(u);
	*users = NULL;
}

int users_reload_if_changed(struct users *u, const char **error_r)
{
	/* Another thread is already reloading: its result will do. */
	if (pthread_mutex_trylock(&u->reload_lock) != 0)
		return 0;
	struct stat st;
	int r = 0;
	if (stat(u->path, &st) < 0) {
		r = -errno;
		*error_r = fmt_error("%s: cannot stat users file: %s", u->path,
				     strerror(errno));
		goto out;
	}
	/* Only this thread writes the stat fields (under reload_lock), so
	 * reading them here needs no rwlock. */
	if ((st.st_dev == u->dev && st.st_ino == u->ino &&
	     st.st_size == u->size && st.st_mtim.tv_sec == u->mtime.tv_sec &&
	     st.st_mtim.tv_nsec == u->mtime.tv_nsec) ||
	    (u->failed && same_file(&st, &u->failed_st)))
		goto out;
	struct user_table *t;
	r = load_table(u->path, &t, &st, error_r);
	if (r < 0) {
		u->failed = true;
		u->failed_st = st;
		goto out;
	}
	u->failed = false;
	pthread_rwlock_wrlock(&u->lock);
	struct user_table *old = u->t;
	u->t = t;
	remember_stat(u, &st);
	pthread_rwlock_unlock(&u->lock);
	table_free(&old);
	r = 1;
out:
	pthread_mutex_unlock(&u->reload_lock);
	return r;
}

size_t users_count(struct users *u)
{
	pthread_rwlock_rdlock(&u->lock);
	size_t n = u->t->count;
	pthread_rwlock_unlock(&u->lock);
	return n;
}

bool users_lookup(struct users *u, struct kstr name, struct user_info *info_r)
{
	pthread_rwlock_rdlock(&u->lock);
	const struct user_entry *e = table_find(u->t, name);
	if (e != NULL && info_r != NULL) {
		info_r->scheme = e->scheme;
		info_r->quota = e->quota;
	}
	pthread_rwlock_unlock(&u->lock);
	return e != NULL;
}

int users_foreach(struct users *u,
		  int (*fn)(const char *name, const struct user_info *info,
			    void *ctx),
		  void *ctx)
{
	int r = 0;
	pthread_rwlock_rdlock(&u->lock);
	for (size_t i = 0; i < u->t->count && r == 0; i++) {
		struct user_info info = { u->t->v[i].scheme, u->t->v[i].quota };
		r = fn(u->t->v[i].name, &info, ctx);
	}
	pthread_rwlock_unlock(&u->lock);
	return r;
}

/* Compares through SHA-256 digests so that neither the contents nor the
 * length of the secret shows in the time taken. */
static bool plain_equal(const void *a, size_t alen, const char *b)
{
	uint8_t da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
	unsigned la = 0, lb = 0;
	if (EVP_Digest(a, alen, da, &la, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL) != 1 ||
	    la != lb)
		return false;
	return CRYPTO_memcmp(da, db, la) == 0;
}

/* crypt(3) check; false on any failure. */
static bool crypt_equal(const char *password, const char *hash)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	bool ok = false;
	const char *out = crypt_rn(password, hash, cd, (int)sizeof(*cd));
	if (out != NULL && out[0] != '*') {
		size_t ol = strlen(out), hl = strlen(hash);
		/* Hash lengths of one method and parameters are fixed, so
		 * the length test leaks nothing about the password. */
		ok = ol == hl && CRYPTO_memcmp(out, hash, hl) == 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

bool users_verify(struct users *u, struct kstr name, const void *password,
		  size_t len)
{
	char *secret = NULL;
	enum users_scheme scheme = USERS_SCHEME_PLAIN;
	bool known = false;

	pthread_rwlock_rdlock(&u->lock);
	const struct user_entry *e = table_find(u->t, name);
	if (e != NULL) {
		known = true;
		scheme = e->scheme;
		secret = xstrdup(e->secret);
	} else if (u->t->dummy != NULL) {
		scheme = USERS_SCHEME_CRYPT;
		secret = xstrdup(u->t->dummy);
	} else {
		secret = xstrdup("kura-dummy-secret");
	}
	pthread_rwlock_unlock(&u->lock);

	bool usable = len <= USERS_PASSWORD_MAX &&
		memchr(password, '\0', len) == NULL;
	/* Copy at most the limit so an unusable password costs the same
	 * as a usable one. */
	size_t clen = len <= USERS_PASSWORD_MAX ? len : USERS_PASSWORD_MAX;
	char *pw = xmalloc(clen + 1);
	memcpy(pw, password, clen);
	pw[clen] = '\0';

	bool match;
	if (scheme == USERS_SCHEME_PLAIN)
		match = plain_equal(pw, clen, secret);
	else
		match = crypt_equal(pw, secret);

	explicit_bzero(pw, clen);
	free(pw);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return known && usable && match;
}

char *users_hash_password(enum users_scheme scheme, const char *password,
			  const char **error_r)
{
	size_t len = strlen(password);
	if (len == 0 || len > USERS_PASSWORD_MAX) {
		*error_r = len == 0 ? "empty password" : "password too long";
		return NULL;
	}
	if (!secret_chars_ok(password)) {
		*error_r = "control character in password";
		return NULL;
	}
	if (scheme == USERS_SCHEME_PLAIN) {
		if (strstr(password, ":quota=") != NULL) {
			*error_r = "a PLAIN password cannot contain ':quota='";
			return NULL;
		}
		char *s;
		if (asprintf(&s, "{PLAIN}%s", password) < 0)
			abort();
		return s;
	}
	const char *prefix = scheme == USERS_SCHEME_SHA512_CRYPT ? "$6$" : "$y$";
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn(prefix, 0, NULL, 0, setting,
			     (int)sizeof(setting)) == NULL) {
		*error_r = "crypt_gensalt failed (method not supported?)";
		return NULL;
	}
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *out = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	char *s = NULL;
	if (out == NULL || out[0] == '*') {
		*error_r = "crypt failed";
	} else if (asprintf(&s, "{%s}%s", users_scheme_name(scheme), out) < 0) {
		abort();
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return s;
}

/* Creates the directory of path (and its parents) if missing. */
static int make_parent_dirs(const char *path)
{
	char *copy = xstrdup(path);
	char *dir = dirname(copy);
	int r = 0;
	/* "users" has the parent "." (a static string in glibc): nothing to
	 * create, and nothing to write into. */
	if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0) {
		free(copy);
		return 0;
	}
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(copy);
	return r;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes data to path atomically: temp file, fsync, rename, fsync dir. */
static int replace_file(const char *path, const char *data, size_t len,
			mode_t mode, const char **error_r)
{
	char *tmp;
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		abort();
	int fd = mkostemp(tmp, O_CLOEXEC);
	int r = 0;
	if (fd < 0) {
		r = -errno;
		*error_r = fmt_error("%s: cannot create: %s", tmp, strerror(errno));
		free(tmp);
		return r;
	}
	if (fchmod(fd, mode) < 0 || (r = write_all(fd, data, len)) < 0 ||
	    fsync(fd) < 0) {
		if (r == 0)
			r = -errno;
		*error_r = fmt_error("%s: cannot write: %s", tmp, strerror(-r));
		close(fd);
		unlink(tmp);
		free(tmp);
		return r;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		r = -errno;
		*error_r = fmt_error("%s: cannot rename into place: %s", path,
				     strerror(errno));
		unlink(tmp);
		free(tmp);
		return r;
	}
	free(tmp);
	char *copy = xstrdup(path);
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Rewrites the file with name's line replaced by name:entry (entry NULL =
 * delete the line), or that line appended when name has none. The old
 * line's quota is kept unless set_quota. */
static int edit_file(const char *path, const char *name, const char *entry,
		     bool set_quota, uint64_t quota, const char **error_r)
{
	if (!users_name_is_valid(kstr_cstr(name))) {
		*error_r = fmt_error("bad user name '%s'", name);
		return -EINVAL;
	}
	int r = make_parent_dirs(path);
	if (r < 0) {
		*error_r = fmt_error("%s: cannot create directory: %s", path,
				     strerror(-r));
		return r;
	}
	char *lockpath;
	if (asprintf(&lockpath, "%s.lock", path) < 0)
		abort();
	int lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lockpath);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0) {
		r = -errno;
		*error_r = fmt_error("%s.lock: cannot lock: %s", path,
				     strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return r;
	}

	char *data = NULL;
	size_t len = 0;
	struct stat st;
	mode_t mode = 0600;
	r = read_file(path, &data, &len, &st);
	if (r == -ENOENT) {
		data = xstrdup("");
		r = 0;
	} else if (r < 0) {
		*error_r = fmt_error("%s: cannot read users file: %s", path,
				     strerror(-r));
		goto out;
	} else {
		mode = st.st_mode & 07777;
	}
	/* Refuse to rewrite a file the server would not load. */
	struct user_table *t;
	char *check = xmalloc(len + 1);
	memcpy(check, data, len + 1);
	r = table_parse(path, check, len, &t, error_r);
	explicit_bzero(check, len);
	free(check);
	if (r < 0)
		goto out;
	table_free(&t);

	struct { char *p; size_t len, cap; } nb = { NULL, 0, 0 };
	bool found = false;
	char *pos = data, *end = data + len, *line;
	bool nl;
	while ((line = next_line(&pos, end, &nl)) != NULL) {
		size_t ll = strlen(line);
		char *copy = xstrdup(line);
		struct user_entry e;
		const char *reason;
		const char *emit = line;
		char *replaced = NULL;
		if (parse_entry(copy, &e, &reason) == 1 &&
		    strcmp(e.name, name) == 0) {
			found = true;
			if (entry == NULL) {
				emit = NULL;
			} else {
				uint64_t q = set_quota ? quota : e.quota;
				if (q != 0)
					r = asprintf(&replaced, "%s:%s:quota=%llu",
						     name, entry,
						     (unsigned long long)q);
				else
					r = asprintf(&replaced, "%s:%s", name,
						     entry);
				if (r < 0)
					abort();
				emit = replaced;
			}
		}
		explicit_bzero(copy, ll);
		free(copy);
		if (emit != NULL) {
			size_t el = strlen(emit);
			xgrow((void **)&nb.p, &nb.cap, nb.len + el + 2, 1);
			memcpy(nb.p + nb.len, emit, el);
			nb.len += el;
			nb.p[nb.len++] = '\n';
		}
		if (replaced != NULL) {
			explicit_bzero(replaced, strlen(replaced));
			free(replaced);
		}
	}
	r = 0;
	if (!found && entry == NULL) {
		*error_r = fmt_error("%s: no user '%s'", path, name);
		r = KURA_ENOTFOUND;
	} else {
		if (!found) {
			char *add;
			if (set_quota && quota != 0)
				r = asprintf(&add, "%s:%s:quota=%llu\n", name,
					     entry, (unsigned long long)quota);
			else
				r = asprintf(&add, "%s:%s\n", name, entry);
			if (r < 0)
				abort();
			size_t al = strlen(add);
			xgrow((void **)&nb.p, &nb.cap, nb.len + al + 1, 1);
			memcpy(nb.p + nb.len, add, al);
			nb.len += al;
			explicit_bzero(add, al);
			free(add);
		}
		r = replace_file(path, nb.p != NULL ? nb.p : "", nb.len,
				 mode, error_r);
	}
	if (nb.p != NULL) {
		explicit_bzero(nb.p, nb.len);
		free(nb.p);
	}
out:
	if (data != NULL) {
		explicit_bzero(data, len);
		free(data);
	}
	close(lfd);
	return r;
}

int users_file_put(const char *path, const char *name, const char *entry,
		   bool set_quota, uint64_t quota, const char **error_r)
{
	struct user_entry e;
	const char *reason;
	char *line;
	if (asprintf(&line, "x:%s", entry) < 0)
		abort();
	int r = parse_entry(line, &e, &reason);
	explicit_bzero(line, strlen(line));
	free(line);
	if (r != 1 || strchr(entry, '\n') != NULL ||
	    strstr(entry, ":quota=") != NULL) {
		*error_r = "bad {SCHEME}secret entry";
		return -EINVAL;
	}
	return edit_file(path, name, entry, set_quota, quota, error_r);
}

int users_file_delete(const char *path, const char *name,
		      const char **error_r)
{
	return edit_file(path, name, NULL, false, 0, error_r);
}
