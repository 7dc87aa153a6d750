/* Replays every file under tests/fuzz/regress/<target>/ through that
 * fuzz target's entry point (built without libFuzzer), so that every
 * crash ever found stays fixed. Prints "fuzz-replay: N passed, 0 failed";
 * a regression crashes the program (and the sanitizers say where). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_imap_parser_one(const uint8_t *data, size_t size);
int fuzz_mime_one(const uint8_t *data, size_t size);
int fuzz_index_one(const uint8_t *data, size_t size);

struct target {
	const char *name;
	int (*fn)(const uint8_t *, size_t);
};

static const struct target targets[] = {
	{ "imap_parser", fuzz_imap_parser_one },
	{ "mime", fuzz_mime_one },
	{ "index", fuzz_index_one },
};

static int replay_dir(const char *dir, const struct target *t, unsigned *count)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FILE *fp = fopen(path, "rb");
		if (fp == NULL)
			continue;
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0;
		for (;;) {
			if (len == cap) {
				cap = cap ? cap * 2 : 4096;
				buf = realloc(buf, cap);
				if (buf == NULL)
					abort();
			}
			size_t n = fread(buf + len, 1, cap - len, fp);
			if (n == 0)
				break;
			len += n;
		}
		fclose(fp);
		t->fn(buf, len);
		free(buf);
		(*count)++;
	}
	closedir(d);
	return 0;
}

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : "tests/fuzz/regress";
	unsigned count = 0;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/%s", root, targets[i].name);
		replay_dir(dir, &targets[i], &count);
		snprintf(dir, sizeof(dir), "tests/fuzz/corpus/%s", targets[i].name);
		replay_dir(dir, &targets[i], &count);
	}
	printf("fuzz-replay: %u passed, 0 failed\n", count);
	return 0;
}
