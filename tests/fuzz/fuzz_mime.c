/* Fuzz target for index/mime: parse, sections (fixed specs and specs
 * made from the input, so the spec parser is fuzzed too), BINARY, and
 * the search helpers with needles taken from the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/mime.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "tests/fuzz/fuzz.h"

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

static void check_string(const char *s)
{
	/* Every value is a complete IMAP list. */
	size_t n = strlen(s);
	if (n == 0 || s[0] != '(' || s[n - 1] != ')')
		abort();
}

static void section(const uint8_t *data, size_t size, struct kstr spec)
{
	struct buf out;
	buf_init(&out, size + 64);
	int r = mime_section(data, size, spec, &out);
	if (r != 0 && r != KURA_EINVAL)
		abort();
	if (r == KURA_EINVAL && mime_section_is_valid(spec))
		abort();
	/* A section is a slice of the message (HEADER.FIELDS adds a
	 * CRLF). */
	if (out.len > size + 2)
		abort();
	buf_reset(&out);
	r = mime_section_binary(data, size, spec, &out);
	if (r != 0 && r != KURA_EINVAL && r != KURA_ECORRUPT)
		abort();
	if (out.len > size)
		abort();
	buf_deinit(&out);
}

FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	static const char *const specs[] = {
		"", "HEADER", "TEXT", "1", "1.MIME", "2", "2.HEADER", "2.TEXT",
		"1.1", "2.1.MIME", "HEADER.FIELDS (From Subject Content-Type)",
		"HEADER.FIELDS.NOT (To Received)", "3.HEADER.FIELDS (X)",
	};
	static const char *const suffix[] = {
		"", ".MIME", ".HEADER", ".TEXT", ".HEADER.FIELDS (Subject)",
	};
	struct mime_info mi;
	char spec[128];

	if (mime_parse(data, size, &mi) != 0)
		abort();
	check_string(mi.envelope);
	check_string(mi.bodystructure);
	check_string(mi.body);
	mime_info_free(&mi);

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		section(data, size, kstr_cstr(specs[i]));

	/* Part numbers from the first bytes of the input. */
	if (size >= 6) {
		int n = snprintf(spec, sizeof(spec), "%u", data[0] % 4 + 1);
		for (unsigned int k = 0; k < (unsigned int)(data[1] % 4); k++)
			n += snprintf(spec + n, sizeof(spec) - (size_t)n, ".%u",
				      data[3 + k] % 3 + 1);
		snprintf(spec + n, sizeof(spec) - (size_t)n, "%s",
			 suffix[data[2] % 5]);
		section(data, size, kstr_cstr(spec));
	}
	/* The input's first line as a spec. */
	const uint8_t *nl = memchr(data, '\n', size < 64 ? size : 64);
	section(data, size, kstr_make(data, nl != NULL ? (size_t)(nl - data) :
				      (size < 64 ? size : 64)));

	/* Needles: the last bytes of the input, and a fixed one. */
	struct kstr needle = kstr_make(data + (size > 3 ? size - 3 : 0),
				       size > 3 ? 3 : size);
	(void)mime_search_text(data, size, needle, false);
	(void)mime_search_text(data, size, KSTR_LIT("\xc3\xa9t\xc3\xa9"), true);
	(void)mime_search_header(data, size, KSTR_LIT("Subject"), needle);
	(void)mime_search_header(data, size, KSTR_LIT("From"), KSTR_LIT(""));

	struct buf out;
	buf_init(&out, 0);
	(void)mime_header_decoded(data, size, KSTR_LIT("Subject"), &out);
	buf_reset(&out);
	utf8_casefold(kstr_make(data, size), &out);
	buf_deinit(&out);
	return 0;
}

#ifdef FUZZ_REPLAY
int fuzz_mime_one(const uint8_t *data, size_t size);
int fuzz_mime_one(const uint8_t *data, size_t size) { return LLVMFuzzerTestOneInput(data, size); }
#endif
