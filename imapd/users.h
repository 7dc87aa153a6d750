/* users: the users file and password checks.
 *
 * File format, one user per line (blank lines and lines starting with
 * '#' are ignored):
 *
 *   name:{SCHEME}secret[:quota=BYTES]
 *
 * name: 1..255 bytes of printable ASCII without ':', '/' or space, and
 * not "." or ".." (names end up in object keys); case-sensitive.
 * SCHEME (case-insensitive):
 *   PLAIN         secret is the cleartext password (for tests only)
 *   SHA512-CRYPT  a crypt(3) "$6$..." hash
 *   YESCRYPT      a crypt(3) "$y$..." hash
 *   CRYPT         any hash this libcrypt supports ("$2b$", "$7$", ...)
 * quota: bytes (K/M/G/T suffixes allowed), 0 or absent = no quota. For
 * PLAIN the secret runs to the end of the line unless the line ends in
 * ":quota=..." (so a cleartext password may contain ':').
 *
 * Thread safety: a struct users may be shared by all worker threads;
 * lookups and verification take a read lock, users_reload_if_changed()
 * swaps the table under a write lock. Verification hashes outside the
 * lock. */
#ifndef KURA_USERS_H
#define KURA_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/kstr.h"

#define USERS_NAME_MAX 255
/* Longer passwords are refused (libcrypt's CRYPT_MAX_PASSPHRASE_SIZE). */
#define USERS_PASSWORD_MAX 512

enum users_scheme {
	USERS_SCHEME_PLAIN = 0,
	USERS_SCHEME_SHA512_CRYPT = 1,
	USERS_SCHEME_YESCRYPT = 2,
	USERS_SCHEME_CRYPT = 3,
};

struct users;

/* What the server may know about a user besides the secret. */
struct user_info {
	enum users_scheme scheme;
	uint64_t quota;		/* bytes, 0 = none */
};

/* Loads the users file at path. Returns 0 and *users_r, or a negative
 * error (-errno when the file cannot be read, -EINVAL on bad syntax) with
 * *error_r such as "users:7: bad user name". *error_r points to a
 * thread-local buffer valid until the next users_* call in this thread.
 * Free with users_destroy(). */
int users_load(const char *path, struct users **users_r,
	       const char **error_r);
void users_destroy(struct users **users);

/* Re-reads the file if its mtime, size or inode changed since the last
 * (re)load: one stat() when nothing changed, cheap enough to call before
 * every login. Returns 1 when reloaded, 0 when unchanged (or when another
 * thread is reloading right now), negative with *error_r (as users_load)
 * when the new file cannot be loaded; then the old table stays in use and
 * that same version of the file is not retried or reported again (0)
 * until it changes. A stat() failure (e.g. the file was removed) is
 * reported every time. Thread-safe. */
int users_reload_if_changed(struct users *users, const char **error_r);

/* Number of users in the current table. */
size_t users_count(struct users *users);

/* Looks a user up by exact name (any bytes; a name that is not valid
 * simply does not exist). Returns true and fills *info_r (may be NULL)
 * when the user exists. */
bool users_lookup(struct users *users, struct kstr name,
		  struct user_info *info_r);

/* Checks a password. Returns true only when the user exists and the
 * password matches. Unknown users, passwords holding a NUL byte or
 * longer than USERS_PASSWORD_MAX cost about the same time as a wrong
 * password for a real user (a dummy hash with the cost of the file's
 * first crypt hash is computed), so the time taken does not tell whether
 * a name exists. CPU-bound: a yescrypt or SHA512-CRYPT check takes
 * milliseconds (tens with costly parameters); callers on an event loop
 * should run it off the loop if that matters. Thread-safe. */
bool users_verify(struct users *users, struct kstr name,
		  const void *password, size_t len);

/* True when name is a valid user name (see the format above). */
bool users_name_is_valid(struct kstr name);

/* Static name of a scheme as written in the file ("YESCRYPT"). */
const char *users_scheme_name(enum users_scheme scheme);
/* Parses "yescrypt", "sha512-crypt", "plain" (case-insensitive; also
 * "crypt", meaning yescrypt when hashing). Returns 0 or -EINVAL. */
int users_scheme_parse(const char *s, enum users_scheme *scheme_r);

/* Returns a malloc'ed "{SCHEME}secret" for password: a fresh salt and
 * the library's default cost for YESCRYPT ("$y$") and SHA512-CRYPT
 * ("$6$"); CRYPT hashes as yescrypt but is written "{CRYPT}"; PLAIN
 * stores the password itself. Returns NULL with *error_r (static) when
 * the password is empty, too long, or holds a control character, or
 * when hashing fails. */
char *users_hash_password(enum users_scheme scheme, const char *password,
			  const char **error_r);

/* Editing the file, for kura-ctl. Both rewrite the whole file through a
 * temporary file in the same directory and rename() it into place
 * (atomic for readers), under an flock() on "PATH.lock" so two editors
 * do not lose each other's change. Other lines, comments and blank lines
 * are kept as they are; the file keeps its mode (new files: 0600).
 *
 * users_file_put() replaces the user's line (keeping its quota unless
 * set_quota) or appends one; entry is "{SCHEME}secret" as returned by
 * users_hash_password(). The file is created (with its directory) when
 * missing. users_file_delete() removes the user's line; KURA_ENOTFOUND
 * when there is none. Both return 0 or negative with *error_r as in
 * users_load(); a file with a syntax error is not rewritten. */
int users_file_put(const char *path, const char *name, const char *entry,
		   bool set_quota, uint64_t quota, const char **error_r);
int users_file_delete(const char *path, const char *name,
		      const char **error_r);

/* Calls fn(name, info, ctx) for each user in file order, for listing.
 * Returns 0 or the first negative value fn returns. */
int users_foreach(struct users *users,
		  int (*fn)(const char *name, const struct user_info *info,
			    void *ctx),
		  void *ctx);

#endif
