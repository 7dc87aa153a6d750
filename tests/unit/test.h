/* Minimal unit test harness: each test program counts checks and prints
 * one line "unit NAME: N passed, N failed" at exit; the exit status is
 * non-zero when anything failed. */
#ifndef KURA_TEST_H
#define KURA_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond) do { \
	if (cond) { test_passed++; } else { test_failed++; \
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_EQ_INT(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a == _b) { test_passed++; } else { test_failed++; \
		fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", \
			__FILE__, __LINE__, #a, #b, _a, _b); } \
} while (0)

#define CHECK_EQ_STR(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (_a != NULL && _b != NULL && strcmp(_a, _b) == 0) { test_passed++; } \
	else { test_failed++; \
		fprintf(stderr, "FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", \
			__FILE__, __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); } \
} while (0)

static inline int test_done(const char *name)
{
	printf("unit %s: %d passed, %d failed\n", name, test_passed, test_failed);
	return test_failed ? 1 : 0;
}

#endif
