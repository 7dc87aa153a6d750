/* Tests imapd/users: file syntax, lookups, password checks for every
 * scheme, reload, and the atomic editing kura-ctl uses. */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imapd/users.h"
#include "lib/errors.h"
#include "tests/unit/test.h"

static char dir[] = "/tmp/kura-test-users.XXXXXX";

static const char *tpath(const char *name)
{
	static char path[4][256];
	static int n;
	char *p = path[n++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, fp);
	fclose(fp);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return NULL;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static bool verify(struct users *u, const char *name, const char *pw)
{
	return users_verify(u, kstr_cstr(name), pw, strlen(pw));
}

static void test_names(void)
{
	CHECK(users_name_is_valid(kstr_cstr("alice")));
	CHECK(users_name_is_valid(kstr_cstr("a.b-c_d+e@example.org")));
	CHECK(users_name_is_valid(kstr_cstr("...")));
	CHECK(!users_name_is_valid(kstr_cstr("")));
	CHECK(!users_name_is_valid(kstr_cstr(".")));
	CHECK(!users_name_is_valid(kstr_cstr("..")));
	CHECK(!users_name_is_valid(kstr_cstr("a b")));
	CHECK(!users_name_is_valid(kstr_cstr("a:b")));
	CHECK(!users_name_is_valid(kstr_cstr("a/b")));
	CHECK(!users_name_is_valid(kstr_cstr("a\tb")));
	CHECK(!users_name_is_valid(kstr_cstr("caf\xc3\xa9")));
	CHECK(!users_name_is_valid(kstr_make("a\0b", 3)));
	char longname[257];
	memset(longname, 'x', 256);
	longname[256] = '\0';
	CHECK(!users_name_is_valid(kstr_cstr(longname)));
	CHECK(users_name_is_valid(kstr_make(longname, 255)));
}

static void test_hash_and_verify(void)
{
	const char *error = NULL;
	char *y = users_hash_password(USERS_SCHEME_YESCRYPT, "s3cret pw", &error);
	char *s6 = users_hash_password(USERS_SCHEME_SHA512_CRYPT, "other:pw", &error);
	char *pl = users_hash_password(USERS_SCHEME_PLAIN, "plain:pw", &error);
	char *cr = users_hash_password(USERS_SCHEME_CRYPT, "crypt pw", &error);
	CHECK(y != NULL && strncmp(y, "{YESCRYPT}$y$", 13) == 0);
	CHECK(s6 != NULL && strncmp(s6, "{SHA512-CRYPT}$6$", 17) == 0);
	CHECK_EQ_STR(pl, "{PLAIN}plain:pw");
	CHECK(cr != NULL && strncmp(cr, "{CRYPT}$y$", 10) == 0);
	/* Fresh salt every time. */
	char *y2 = users_hash_password(USERS_SCHEME_YESCRYPT, "s3cret pw", &error);
	CHECK(y2 != NULL && y != NULL && strcmp(y, y2) != 0);
	free(y2);

	CHECK(users_hash_password(USERS_SCHEME_YESCRYPT, "", &error) == NULL);
	CHECK_EQ_STR(error, "empty password");
	CHECK(users_hash_password(USERS_SCHEME_PLAIN, "a\nb", &error) == NULL);
	CHECK(users_hash_password(USERS_SCHEME_PLAIN, "x:quota=1", &error) == NULL);
	char big[USERS_PASSWORD_MAX + 2];
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(users_hash_password(USERS_SCHEME_SHA512_CRYPT, big, &error) == NULL);
	CHECK_EQ_STR(error, "password too long");

	/* A bcrypt hash under {CRYPT}, when this libcrypt has bcrypt, and
	 * a cheap SHA512-CRYPT with explicit rounds. */
	char bsalt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *bhash = NULL;
	if (crypt_gensalt_rn("$2b$", 4, NULL, 0, bsalt, sizeof(bsalt)) != NULL)
		bhash = crypt_rn("bcrypt pw", bsalt, cd, sizeof(*cd));
	char bline[256] = "";
	if (bhash != NULL && bhash[0] == '$')
		snprintf(bline, sizeof(bline), "dave:{CRYPT}%s\n", bhash);
	else
		fprintf(stderr, "  (no bcrypt in libcrypt, skipped)\n");
	char s6r[CRYPT_OUTPUT_SIZE];
	snprintf(s6r, sizeof(s6r), "%s",
		 crypt_rn("rounds pw", "$6$rounds=1000$abcdefgh", cd, sizeof(*cd)));
	free(cd);

	char text[4096];
	snprintf(text, sizeof(text),
		 "# kura users\n"
		 "\n"
		 "alice:%s\n"
		 "bob:%s:quota=1G\r\n"
		 "   # indented comment\n"
		 "carol:%s:quota=12345\n"
		 "erin:%s\n"
		 "%s"
		 "frank:{sha512-crypt}%s\n"
		 "grace:{PLAIN}a:b:c",
		 y, s6, pl, cr, bline, s6r);
	const char *path = tpath("users");
	write_file(path, text);
	struct users *u = NULL;
	int r = users_load(path, &u, &error);
	CHECK_EQ_INT(r, 0);
	if (r < 0) {
		fprintf(stderr, "  %s\n", error);
		return;
	}
	CHECK_EQ_INT(users_count(u), bline[0] ? 7 : 6);

	CHECK(verify(u, "alice", "s3cret pw"));
	CHECK(!verify(u, "alice", "s3cret pW"));
	CHECK(!verify(u, "alice", "s3cret pw "));
	CHECK(!verify(u, "alice", ""));
	CHECK(!verify(u, "Alice", "s3cret pw"));
	CHECK(verify(u, "bob", "other:pw"));
	CHECK(!verify(u, "bob", "other"));
	CHECK(verify(u, "carol", "plain:pw"));
	CHECK(!verify(u, "carol", "plain:p"));
	CHECK(!verify(u, "carol", "plain:pw2"));
	CHECK(verify(u, "erin", "crypt pw"));
	if (bline[0]) {
		CHECK(verify(u, "dave", "bcrypt pw"));
		CHECK(!verify(u, "dave", "bcrypt pW"));
	}
	CHECK(verify(u, "frank", "rounds pw"));
	CHECK(!verify(u, "frank", "rounds"));
	CHECK(verify(u, "grace", "a:b:c"));
	CHECK(!verify(u, "nobody", "s3cret pw"));
	CHECK(!verify(u, "", ""));
	/* Embedded NUL: never matches even if the prefix would. */
	CHECK(!users_verify(u, kstr_cstr("carol"), "plain:pw\0x", 10));
	CHECK(!users_verify(u, kstr_make("carol\0", 6), "plain:pw", 8));
	char *huge = malloc(100000);
	memset(huge, 'a', 100000);
	CHECK(!users_verify(u, kstr_cstr("alice"), huge, 100000));
	free(huge);

	struct user_info info;
	CHECK(users_lookup(u, kstr_cstr("bob"), &info));
	CHECK_EQ_INT(info.scheme, USERS_SCHEME_SHA512_CRYPT);
	CHECK_EQ_INT(info.quota, 1ULL << 30);
	CHECK(users_lookup(u, kstr_cstr("carol"), &info));
	CHECK_EQ_INT(info.scheme, USERS_SCHEME_PLAIN);
	CHECK_EQ_INT(info.quota, 12345);
	CHECK(users_lookup(u, kstr_cstr("alice"), &info));
	CHECK_EQ_INT(info.quota, 0);
	CHECK_EQ_INT(info.scheme, USERS_SCHEME_YESCRYPT);
	CHECK(users_lookup(u, kstr_cstr("erin"), NULL));
	CHECK(!users_lookup(u, kstr_cstr("nobody"), &info));
	CHECK(!users_lookup(u, kstr_cstr("alic"), NULL));

	/* An unknown name costs about as much as a wrong password: compare
	 * the fastest of a few runs of each (generous bounds for a busy
	 * machine; the failure this catches is a 100x difference). */
	double known = 1e9, unknown = 1e9;
	for (int i = 0; i < 5; i++) {
		struct timespec a, b, c;
		clock_gettime(CLOCK_MONOTONIC, &a);
		verify(u, "alice", "wrong");
		clock_gettime(CLOCK_MONOTONIC, &b);
		verify(u, "no-such-user", "wrong");
		clock_gettime(CLOCK_MONOTONIC, &c);
		double k = (double)(b.tv_sec - a.tv_sec) * 1e3 +
			(double)(b.tv_nsec - a.tv_nsec) / 1e6;
		double n = (double)(c.tv_sec - b.tv_sec) * 1e3 +
			(double)(c.tv_nsec - b.tv_nsec) / 1e6;
		known = k < known ? k : known;
		unknown = n < unknown ? n : unknown;
	}
	if (!(unknown > known / 4 && unknown < known * 4))
		fprintf(stderr, "  timing: known %.2f ms, unknown %.2f ms\n",
			known, unknown);
	CHECK(unknown > known / 4 && unknown < known * 4);

	users_destroy(&u);
	CHECK(u == NULL);
	free(y);
	free(s6);
	free(pl);
	free(cr);
}

static void check_load_error(const char *text, const char *want)
{
	const char *path = tpath("bad");
	write_file(path, text);
	struct users *u = NULL;
	const char *error = NULL;
	int r = users_load(path, &u, &error);
	CHECK_EQ_INT(r, -EINVAL);
	CHECK(u == NULL);
	char full[512];
	snprintf(full, sizeof(full), "%s%s", path, want);
	if (error == NULL || strstr(error, full) == NULL)
		fprintf(stderr, "  expected '%s' in '%s'\n", full,
			error ? error : "(null)");
	CHECK(error != NULL && strstr(error, full) != NULL);
}

static void test_syntax_errors(void)
{
	check_load_error("# x\nalice\n", ":2: expected name:{SCHEME}secret");
	check_load_error("a b:{PLAIN}x\n", ":1: bad user name");
	check_load_error(":{PLAIN}x\n", ":1: bad user name");
	check_load_error("\n\nbob:PLAIN}x\n", ":3: expected {SCHEME}");
	check_load_error("bob:{MD5}x\n", ":1: unknown scheme");
	check_load_error("bob:{PLAIN}\n", ":1: empty secret");
	check_load_error("bob:{PLAIN}x:quota=lots\n", ":1: bad quota");
	check_load_error("bob:{PLAIN}x:quota=99999999999T\n", ":1: bad quota");
	check_load_error("bob:{YESCRYPT}$6$abc$def\n", ":1: YESCRYPT hash must");
	check_load_error("bob:{SHA512-CRYPT}$y$abc\n", ":1: SHA512-CRYPT hash must");
	check_load_error("bob:{CRYPT}$zz$nonsense\n", ":1: hash not supported");
	check_load_error("bob:{CRYPT}$6$saltsalt$hash:extra\n",
			 ":1: unknown field");
	check_load_error("bob:{PLAIN}a\x01" "b\n", ":1: empty secret or control");
	check_load_error("bob:{PLAIN}x\nbob:{PLAIN}y\n", ": user 'bob' is listed twice");

	const char *path = tpath("nul");
	FILE *fp = fopen(path, "w");
	fwrite("bob:{PLAIN}a\0b\n", 1, 15, fp);
	fclose(fp);
	struct users *u = NULL;
	const char *error;
	CHECK_EQ_INT(users_load(path, &u, &error), -EINVAL);
	CHECK(strstr(error, "NUL byte") != NULL);

	CHECK_EQ_INT(users_load(tpath("missing"), &u, &error), -ENOENT);
	CHECK(strstr(error, "cannot read users file") != NULL);

	/* Empty and comment-only files are valid: no users. */
	path = tpath("empty");
	write_file(path, "# nobody yet\n");
	CHECK_EQ_INT(users_load(path, &u, &error), 0);
	CHECK_EQ_INT(users_count(u), 0);
	CHECK(!verify(u, "x", "y"));
	users_destroy(&u);
}

struct reader_arg {
	struct users *u;
	bool stop;	/* __atomic */
	int bad;	/* __atomic */
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	while (!__atomic_load_n(&a->stop, __ATOMIC_RELAXED)) {
		if (!verify(a->u, "alice", "pw1"))
			__atomic_fetch_add(&a->bad, 1, __ATOMIC_RELAXED);
		users_lookup(a->u, kstr_cstr("bob"), NULL);
	}
	return NULL;
}

static void test_reload(void)
{
	const char *path = tpath("reload");
	write_file(path, "alice:{PLAIN}pw1\n");
	struct users *u;
	const char *error;
	CHECK_EQ_INT(users_load(path, &u, &error), 0);
	CHECK_EQ_INT(users_reload_if_changed(u, &error), 0);
	CHECK(!users_lookup(u, kstr_cstr("bob"), NULL));

	/* Replaced through rename (as kura-ctl does): new inode. */
	const char *tmp = tpath("reload.new");
	write_file(tmp, "alice:{PLAIN}pw1\nbob:{PLAIN}pw2\n");
	rename(tmp, path);
	CHECK_EQ_INT(users_reload_if_changed(u, &error), 1);
	CHECK(users_lookup(u, kstr_cstr("bob"), NULL));
	CHECK(verify(u, "bob", "pw2"));
	CHECK_EQ_INT(users_reload_if_changed(u, &error), 0);

	/* A broken file keeps the old table. */
	write_file(path, "alice:{PLAIN}pw1\nbroken line\n");
	CHECK_EQ_INT(users_reload_if_changed(u, &error), -EINVAL);
	CHECK(strstr(error, ":2:") != NULL);
	CHECK(verify(u, "bob", "pw2"));
	/* Reported once, not at every login. */
	CHECK_EQ_INT(users_reload_if_changed(u, &error), 0);
	/* Fixed: picked up. */
	write_file(tmp, "alice:{PLAIN}pw1\nbob:{PLAIN}pw3\n");
	rename(tmp, path);
	CHECK_EQ_INT(users_reload_if_changed(u, &error), 1);
	CHECK(verify(u, "bob", "pw3"));

	/* Reloads while other threads verify. */
	struct reader_arg arg = { u, false, 0 };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, &arg);
	for (int i = 0; i < 50; i++) {
		char text[128];
		snprintf(text, sizeof(text), "alice:{PLAIN}pw1\nbob:{PLAIN}v%d\n", i);
		write_file(tmp, text);
		rename(tmp, path);
		if (users_reload_if_changed(u, &error) != 1)
			__atomic_fetch_add(&arg.bad, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&arg.stop, true, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ_INT(arg.bad, 0);
	CHECK(verify(u, "bob", "v49"));

	unlink(path);
	CHECK(users_reload_if_changed(u, &error) == -ENOENT);
	CHECK(verify(u, "bob", "v49"));
	users_destroy(&u);
}

static void test_file_edit(void)
{
	const char *path = tpath("sub/dir/users");
	const char *error;
	char *e1 = users_hash_password(USERS_SCHEME_PLAIN, "one", &error);
	char *e2 = users_hash_password(USERS_SCHEME_PLAIN, "two", &error);
	char *e3 = users_hash_password(USERS_SCHEME_SHA512_CRYPT, "three", &error);

	/* Creates the directories and the file (mode 0600). */
	CHECK_EQ_INT(users_file_put(path, "alice", e1, false, 0, &error), 0);
	CHECK_EQ_STR(slurp(path), "alice:{PLAIN}one\n");
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* Comments, blank lines and order are kept; a missing final
	 * newline is added; replacing keeps the quota. */
	write_file(path, "# head\n\nalice:{PLAIN}one:quota=5\n# mid\nzed:{PLAIN}z");
	chmod(path, 0640);
	CHECK_EQ_INT(users_file_put(path, "bob", e2, true, 1024, &error), 0);
	CHECK_EQ_STR(slurp(path), "# head\n\nalice:{PLAIN}one:quota=5\n# mid\n"
		     "zed:{PLAIN}z\nbob:{PLAIN}two:quota=1024\n");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
	CHECK_EQ_INT(users_file_put(path, "alice", e2, false, 0, &error), 0);
	CHECK_EQ_STR(slurp(path), "# head\n\nalice:{PLAIN}two:quota=5\n# mid\n"
		     "zed:{PLAIN}z\nbob:{PLAIN}two:quota=1024\n");
	CHECK_EQ_INT(users_file_put(path, "alice", e1, true, 0, &error), 0);
	CHECK_EQ_STR(slurp(path), "# head\n\nalice:{PLAIN}one\n# mid\n"
		     "zed:{PLAIN}z\nbob:{PLAIN}two:quota=1024\n");
	CHECK_EQ_INT(users_file_put(path, "zed", e3, false, 0, &error), 0);

	struct users *u;
	CHECK_EQ_INT(users_load(path, &u, &error), 0);
	CHECK(verify(u, "zed", "three"));
	CHECK(verify(u, "alice", "one"));
	CHECK(verify(u, "bob", "two"));
	users_destroy(&u);

	CHECK_EQ_INT(users_file_delete(path, "zed", &error), 0);
	CHECK_EQ_STR(slurp(path), "# head\n\nalice:{PLAIN}one\n# mid\n"
		     "bob:{PLAIN}two:quota=1024\n");
	CHECK_EQ_INT(users_file_delete(path, "zed", &error), KURA_ENOTFOUND);
	CHECK(strstr(error, "no user 'zed'") != NULL);
	CHECK_EQ_INT(users_file_delete(path, "alice", &error), 0);
	CHECK_EQ_INT(users_file_delete(path, "bob", &error), 0);
	CHECK_EQ_STR(slurp(path), "# head\n\n# mid\n");

	/* Refusals: bad names, bad entries, a file the server could not
	 * load (left untouched). */
	CHECK_EQ_INT(users_file_put(path, "a b", e1, false, 0, &error), -EINVAL);
	CHECK_EQ_INT(users_file_put(path, "x", "nonsense", false, 0, &error),
		     -EINVAL);
	CHECK_EQ_INT(users_file_put(path, "x", "{PLAIN}a\nb:{PLAIN}c", false, 0,
				    &error), -EINVAL);
	CHECK_EQ_INT(users_file_put(path, "x", "{PLAIN}a:quota=1", false, 0,
				    &error), -EINVAL);
	write_file(path, "ok:{PLAIN}x\nnot a user line\n");
	CHECK_EQ_INT(users_file_put(path, "new", e1, false, 0, &error), -EINVAL);
	CHECK(strstr(error, ":2:") != NULL);
	CHECK_EQ_STR(slurp(path), "ok:{PLAIN}x\nnot a user line\n");
	free(e1);
	free(e2);
	free(e3);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_names();
	test_hash_and_verify();
	test_syntax_errors();
	test_reload();
	test_file_edit();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_done("users");
}
