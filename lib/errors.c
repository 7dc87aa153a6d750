#include "lib/errors.h"

#include <string.h>

const char *kura_strerror(int err)
{
	switch (err) {
	case KURA_EUNAVAIL: return "storage backend unavailable";
	case KURA_ECONFLICT: return "concurrent update (create-only PUT refused)";
	case KURA_ENOTFOUND: return "not found";
	case KURA_EEXISTS: return "already exists";
	case KURA_ELIMIT: return "limit reached";
	case KURA_ETOOBIG: return "too big";
	case KURA_ECORRUPT: return "stored data is corrupt";
	case KURA_EOVERQUOTA: return "quota exceeded";
	case KURA_ETIMEOUT: return "timed out";
	case KURA_ENOPERM: return "not allowed";
	case KURA_EINVAL: return "invalid argument";
	default:
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown error";
	}
}

const char *kura_imap_code(int err)
{
	switch (err) {
	case KURA_EUNAVAIL: return "UNAVAILABLE";
	case KURA_ETIMEOUT: return "UNAVAILABLE";
	case KURA_ECONFLICT: return "INUSE";
	case KURA_ENOTFOUND: return "NONEXISTENT";
	case KURA_EEXISTS: return "ALREADYEXISTS";
	case KURA_ELIMIT: return "LIMIT";
	case KURA_ETOOBIG: return "TOOBIG";
	case KURA_ECORRUPT: return "CORRUPTION";
	case KURA_EOVERQUOTA: return "OVERQUOTA";
	case KURA_ENOPERM: return "NOPERM";
	case KURA_EINVAL: return "CLIENTBUG";
	default: return "SERVERBUG";
	}
}
