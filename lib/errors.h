/* Error codes: functions return 0 or a negative number, either -errno or
 * one of the project's own codes below -20000. kura_strerror() names
 * both. */
#ifndef KURA_ERRORS_H
#define KURA_ERRORS_H

enum kura_error {
	KURA_EUNAVAIL = -20001,	/* backend unavailable / failed: retry later */
	KURA_ECONFLICT = -20002,	/* create-only PUT lost the race (412) */
	KURA_ENOTFOUND = -20003,	/* object, mailbox or message does not exist */
	KURA_EEXISTS = -20004,	/* mailbox or object already exists */
	KURA_ELIMIT = -20005,	/* a configured limit was reached */
	KURA_ETOOBIG = -20006,	/* object or literal too large */
	KURA_ECORRUPT = -20007,	/* stored data failed to parse */
	KURA_EOVERQUOTA = -20008,	/* quota exceeded */
	KURA_ETIMEOUT = -20009,	/* request timed out */
	KURA_ENOPERM = -20010,	/* not allowed */
	KURA_EINVAL = -20011,	/* invalid argument from the client */
};

/* Static text for a negative code (-errno or enum kura_error). */
const char *kura_strerror(int err);
/* IMAP response code for an error, without brackets ("UNAVAILABLE",
 * "TRYCREATE", ...), or NULL when none fits. */
const char *kura_imap_code(int err);

#endif
