/* s3-baseline: raw PUT and GET throughput and latency of an S3 endpoint,
 * measured with Debian's libs3 (SigV2) as a client independent of kura's
 * own S3 code. The bench (bench/run-bench.sh) divides kura's APPEND rate
 * on the same endpoint by these numbers.
 *
 *   s3-baseline --host 127.0.0.1:7480 --bucket b --size 4096 \
 *               --concurrency 20 --count 2000 [--json FILE]
 *
 * One thread drives --concurrency requests at once through one libs3
 * request context (curl multi, keep-alive connections): first --count
 * PUTs of distinct keys PREFIX/SIZE/N, then --count GETs of those keys in
 * a seeded random order, each GET checked to return exactly --size bytes;
 * then the objects are deleted (not measured) unless --keep. A warm-up of
 * 2 x concurrency PUTs (not measured) opens the connections first.
 * Latency runs from handing the request to libs3 to its completion
 * callback. A phase stops issuing after --max-seconds and aborts what is
 * still running 30 s later (counted as errors). Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or
 * S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY). Exit status 0 when the run
 * completed (errors are data, see the JSON), 2 on bad options, 1 when
 * every request failed. */
#include "bench/bench_hist.h"
#include "lib/util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libs3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#define MAX_CONCURRENCY 512	/* select() and FD_SETSIZE */
#define MAX_SAMPLES 8
#define HANG_GRACE_US (30 * 1000000ULL)	/* after --max-seconds */

enum phase {
	PHASE_WARMUP = 0,
	PHASE_PUT,
	PHASE_GET,
	PHASE_DELETE,
	PHASE_COUNT,
};

static const char *const phase_name[PHASE_COUNT] = {
	"warmup", "put", "get", "delete",
};

struct phase_stats {
	uint64_t ops, errors;
	uint64_t t_start, t_end;	/* first issue, last completion */
	struct bench_hist hist;
	char *samples[MAX_SAMPLES];
	unsigned nsamples;
};

struct slot {
	bool busy;
	uint64_t t0;
	size_t key;
	uint64_t offset;	/* PUT: bytes handed out; GET: bytes received */
	S3Status status;
	char err[256];
};

static struct {
	S3BucketContext ctx;
	S3RequestContext *rq;
	const char *prefix;
	size_t size, concurrency, count;
	double max_seconds;
	uint64_t seed;
	bool keep;
	char *data;		/* the body of every PUT */
	size_t *order;		/* GET order */
	struct slot *slots;
	size_t inflight;
	enum phase phase;
	struct phase_stats st[PHASE_COUNT];
} S;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("s3-baseline: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void key_name(size_t i, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%zu/%08zu", S.prefix, S.size, i);
}

static S3Status on_props(const S3ResponseProperties *p, void *data)
{
	(void)p;
	(void)data;
	return S3StatusOK;
}

static void sample(struct phase_stats *ps, const char *what)
{
	for (unsigned i = 0; i < ps->nsamples; i++)
		if (strcmp(ps->samples[i], what) == 0)
			return;
	if (ps->nsamples < MAX_SAMPLES)
		ps->samples[ps->nsamples++] = xstrdup(what);
}

static void on_complete(S3Status status, const S3ErrorDetails *e, void *data)
{
	struct slot *sl = data;
	struct phase_stats *ps = &S.st[S.phase];
	uint64_t now = time_mono_usec();

	sl->status = status;
	if (status == S3StatusOK && S.phase == PHASE_GET && sl->offset != S.size) {
		snprintf(sl->err, sizeof(sl->err),
			 "GET returned %" PRIu64 " bytes, expected %zu",
			 sl->offset, S.size);
		sl->status = S3StatusAbortedByCallback;
	} else if (status != S3StatusOK) {
		snprintf(sl->err, sizeof(sl->err), "%s%s%s",
			 S3_get_status_name(status),
			 e != NULL && e->message != NULL ? ": " : "",
			 e != NULL && e->message != NULL ? e->message : "");
	}
	if (sl->status == S3StatusOK) {
		ps->ops++;
		bench_hist_add(&ps->hist, now - sl->t0);
	} else {
		ps->errors++;
		sample(ps, sl->err);
	}
	ps->t_end = now;
	sl->busy = false;
	S.inflight--;
}

static int on_put_data(int cap, char *buf, void *data)
{
	struct slot *sl = data;
	uint64_t left = S.size - sl->offset;
	int n = left < (uint64_t)cap ? (int)left : cap;

	memcpy(buf, S.data + sl->offset, (size_t)n);
	sl->offset += (uint64_t)n;
	return n;
}

static S3Status on_get_data(int n, const char *buf, void *data)
{
	struct slot *sl = data;

	(void)buf;
	sl->offset += (uint64_t)n;
	return sl->offset <= S.size ? S3StatusOK : S3StatusAbortedByCallback;
}

static void issue(struct slot *sl, size_t key)
{
	static const S3PutObjectHandler put_h = {
		{ on_props, on_complete }, on_put_data,
	};
	static const S3GetObjectHandler get_h = {
		{ on_props, on_complete }, on_get_data,
	};
	static const S3ResponseHandler del_h = { on_props, on_complete };
	char name[512];

	key_name(key, name, sizeof(name));
	sl->busy = true;
	sl->key = key;
	sl->offset = 0;
	sl->err[0] = '\0';
	sl->t0 = time_mono_usec();
	if (S.st[S.phase].t_start == 0)
		S.st[S.phase].t_start = sl->t0;
	S.inflight++;
	switch (S.phase) {
	case PHASE_WARMUP:
	case PHASE_PUT:
		S3_put_object(&S.ctx, name, S.size, NULL, S.rq, &put_h, sl);
		break;
	case PHASE_GET:
		S3_get_object(&S.ctx, name, NULL, 0, 0, S.rq, &get_h, sl);
		break;
	case PHASE_DELETE:
	case PHASE_COUNT:
		S3_delete_object(&S.ctx, name, S.rq, &del_h, sl);
		break;
	}
}

/* Runs n requests (key i = first + i, or S.order[i] for GET) with
 * S.concurrency in flight. */
static void run_phase(enum phase ph, size_t first, size_t n)
{
	uint64_t deadline = time_mono_usec() + (uint64_t)(S.max_seconds * 1e6);
	size_t next = 0;
	int remaining = 0;

	S.phase = ph;
	for (;;) {
		for (size_t i = 0; i < S.concurrency && next < n &&
		     time_mono_usec() < deadline; i++) {
			if (S.slots[i].busy)
				continue;
			issue(&S.slots[i], ph == PHASE_GET ? S.order[next] :
			      first + next);
			next++;
		}
		if (S.inflight == 0 && (next >= n || time_mono_usec() >= deadline))
			break;
		if (time_mono_usec() >= deadline + HANG_GRACE_US) {
			/* libs3 2.0 has no request timeout: abort what hangs
			 * (each is completed as S3StatusInterrupted, an error) */
			S3_destroy_request_context(S.rq);
			if (S3_create_request_context(&S.rq) != S3StatusOK)
				die("S3_create_request_context failed");
			continue;
		}
		S3Status rc = S3_runonce_request_context(S.rq, &remaining);

		if (rc != S3StatusOK)
			die("libs3: %s", S3_get_status_name(rc));
		if (S.inflight == 0)
			continue;

		fd_set r, w, x;
		int maxfd = -1;
		int64_t ms = S3_get_request_context_timeout(S.rq);
		struct timeval tv;

		FD_ZERO(&r);
		FD_ZERO(&w);
		FD_ZERO(&x);
		if (S3_get_request_context_fdsets(S.rq, &r, &w, &x, &maxfd) !=
		    S3StatusOK)
			die("libs3: cannot get the request fds");
		if (ms < 0 || ms > 50)
			ms = 50;
		if (maxfd < 0 && ms > 1)
			ms = 1;
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)ms * 1000;
		if (select(maxfd + 1, &r, &w, &x, &tv) < 0 && errno != EINTR)
			die("select: %s", strerror(errno));
	}
}

static json_t *phase_json(const struct phase_stats *ps)
{
	const struct bench_hist *h = &ps->hist;
	double secs = ps->t_end > ps->t_start ?
		(double)(ps->t_end - ps->t_start) / 1e6 : 0;
	json_t *o = json_object(), *lat = json_object(), *smp = json_array();

	json_object_set_new(o, "ops", json_integer((json_int_t)ps->ops));
	json_object_set_new(o, "errors", json_integer((json_int_t)ps->errors));
	json_object_set_new(o, "duration_s", json_real(secs));
	json_object_set_new(o, "ops_per_s",
			    json_real(secs > 0 ? (double)ps->ops / secs : 0));
	json_object_set_new(o, "mib_per_s",
			    json_real(secs > 0 ? (double)ps->ops * (double)S.size /
				      1048576.0 / secs : 0));
	json_object_set_new(lat, "p50", json_integer((json_int_t)bench_hist_percentile(h, 50)));
	json_object_set_new(lat, "p90", json_integer((json_int_t)bench_hist_percentile(h, 90)));
	json_object_set_new(lat, "p99", json_integer((json_int_t)bench_hist_percentile(h, 99)));
	json_object_set_new(lat, "max", json_integer((json_int_t)h->max));
	json_object_set_new(lat, "min", json_integer((json_int_t)h->min));
	json_object_set_new(lat, "mean", json_real(bench_hist_mean(h)));
	json_object_set_new(o, "latency_us", lat);
	for (unsigned i = 0; i < ps->nsamples; i++)
		json_array_append_new(smp, json_string(ps->samples[i]));
	json_object_set_new(o, "error_samples", smp);
	return o;
}

static void usage(void)
{
	fputs("usage: s3-baseline --host HOST[:PORT] --bucket BUCKET [--https] [--vhost]\n"
	      "         [--size BYTES (4096)] [--concurrency C (20)] [--count N (1000)]\n"
	      "         [--max-seconds S (60, per phase)] [--prefix P (s3-baseline)]\n"
	      "         [--seed S (1)] [--keep] [--json FILE]\n"
	      "keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or S3_*)\n", stderr);
	exit(2);
}

static uint64_t opt_u64(const char *name, const char *v, uint64_t lo, uint64_t hi)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || end == v || n < lo || n > hi)
		die("--%s: expected an integer in %" PRIu64 "..%" PRIu64,
		    name, lo, hi);
	return n;
}

static const char *env2(const char *a, const char *b)
{
	const char *v = getenv(a);

	return v != NULL && v[0] != '\0' ? v : getenv(b);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "bucket", required_argument, NULL, 'b' },
		{ "https", no_argument, NULL, 's' },
		{ "vhost", no_argument, NULL, 'v' },
		{ "size", required_argument, NULL, 'z' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "max-seconds", required_argument, NULL, 't' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 'S' },
		{ "keep", no_argument, NULL, 'k' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL, *bucket = NULL, *json_path = NULL;
	bool https = false, vhost = false;
	uint64_t rng;
	int c;

	S.size = 4096;
	S.concurrency = 20;
	S.count = 1000;
	S.max_seconds = 60;
	S.prefix = "s3-baseline";
	S.seed = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H': host = optarg; break;
		case 'b': bucket = optarg; break;
		case 's': https = true; break;
		case 'v': vhost = true; break;
		case 'z': S.size = opt_u64("size", optarg, 0, 1u << 30); break;
		case 'c': S.concurrency = opt_u64("concurrency", optarg, 1, MAX_CONCURRENCY); break;
		case 'n': S.count = opt_u64("count", optarg, 1, 100000000); break;
		case 't': S.max_seconds = (double)opt_u64("max-seconds", optarg, 1, 86400); break;
		case 'p': S.prefix = optarg; break;
		case 'S': S.seed = opt_u64("seed", optarg, 0, UINT64_MAX); break;
		case 'k': S.keep = true; break;
		case 'j': json_path = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || host == NULL || bucket == NULL)
		usage();
	S.ctx.hostName = host;
	S.ctx.bucketName = bucket;
	S.ctx.protocol = https ? S3ProtocolHTTPS : S3ProtocolHTTP;
	S.ctx.uriStyle = vhost ? S3UriStyleVirtualHost : S3UriStylePath;
	S.ctx.accessKeyId = env2("AWS_ACCESS_KEY_ID", "S3_ACCESS_KEY_ID");
	S.ctx.secretAccessKey = env2("AWS_SECRET_ACCESS_KEY", "S3_SECRET_ACCESS_KEY");
	if (S.ctx.accessKeyId == NULL || S.ctx.secretAccessKey == NULL)
		die("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");

	S3Status st = S3_initialize("kura-s3-baseline", S3_INIT_ALL, host);

	if (st != S3StatusOK)
		die("S3_initialize: %s", S3_get_status_name(st));
	if (S3_create_request_context(&S.rq) != S3StatusOK)
		die("S3_create_request_context failed");

	rng = S.seed;
	S.data = xmalloc(S.size + 8);
	for (size_t i = 0; i < S.size; i += 8) {
		uint64_t v = splitmix(&rng);

		memcpy(S.data + i, &v, 8);
	}
	S.slots = xcalloc(S.concurrency, sizeof(*S.slots));
	S.order = xcalloc(S.count, sizeof(*S.order));
	for (size_t i = 0; i < S.count; i++)
		S.order[i] = i;
	for (size_t i = S.count; i > 1; i--) {
		size_t j = (size_t)(splitmix(&rng) % i);
		size_t t = S.order[i - 1];

		S.order[i - 1] = S.order[j];
		S.order[j] = t;
	}

	/* warm-up keys follow the measured ones */
	run_phase(PHASE_WARMUP, S.count, 2 * S.concurrency);
	run_phase(PHASE_PUT, 0, S.count);
	run_phase(PHASE_GET, 0, S.count);
	if (!S.keep)
		run_phase(PHASE_DELETE, 0, S.count + 2 * S.concurrency);

	json_t *root = json_object(), *cfg = json_object();

	json_object_set_new(root, "tool", json_string("s3-baseline"));
	json_object_set_new(root, "client", json_string("libs3 2.0 (Debian libs3-2, AWS signature V2)"));
	json_object_set_new(cfg, "host", json_string(host));
	json_object_set_new(cfg, "bucket", json_string(bucket));
	json_object_set_new(cfg, "https", json_boolean(https));
	json_object_set_new(cfg, "size", json_integer((json_int_t)S.size));
	json_object_set_new(cfg, "concurrency", json_integer((json_int_t)S.concurrency));
	json_object_set_new(cfg, "count", json_integer((json_int_t)S.count));
	json_object_set_new(cfg, "prefix", json_string(S.prefix));
	json_object_set_new(cfg, "seed", json_integer((json_int_t)S.seed));
	json_object_set_new(root, "config", cfg);
	for (int p = PHASE_WARMUP; p < PHASE_COUNT; p++)
		json_object_set_new(root, phase_name[p], phase_json(&S.st[p]));

	char *text = json_dumps(root, JSON_INDENT(2));

	if (json_path != NULL) {
		FILE *f = fopen(json_path, "w");

		if (f == NULL || fputs(text, f) < 0 || fputc('\n', f) < 0 ||
		    fclose(f) != 0)
			die("cannot write %s: %s", json_path, strerror(errno));
	}
	for (int p = PHASE_PUT; p <= PHASE_GET; p++) {
		const struct phase_stats *ps = &S.st[p];
		double secs = ps->t_end > ps->t_start ?
			(double)(ps->t_end - ps->t_start) / 1e6 : 0;

		printf("%-4s %7zu B x%-3zu %8" PRIu64 " ops %6" PRIu64
		       " errors %9.1f ops/s  p50 %8.3f ms  p99 %8.3f ms\n",
		       phase_name[p], S.size, S.concurrency, ps->ops, ps->errors,
		       secs > 0 ? (double)ps->ops / secs : 0,
		       (double)bench_hist_percentile(&ps->hist, 50) / 1e3,
		       (double)bench_hist_percentile(&ps->hist, 99) / 1e3);
		for (unsigned i = 0; i < ps->nsamples; i++)
			fprintf(stderr, "s3-baseline: %s error: %s\n",
				phase_name[p], ps->samples[i]);
	}
	free(text);
	json_decref(root);
	bool all_failed = S.st[PHASE_PUT].ops == 0;

	for (int p = PHASE_WARMUP; p < PHASE_COUNT; p++)
		for (unsigned i = 0; i < S.st[p].nsamples; i++)
			free(S.st[p].samples[i]);
	S3_destroy_request_context(S.rq);
	S3_deinitialize();
	free(S.data);
	free(S.slots);
	free(S.order);
	return all_failed ? 1 : 0;
}
