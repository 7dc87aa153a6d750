#include "lib/offload.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"

#define OFFLOAD_THREADS 2

struct offload_job {
	int (*fn)(void *arg);
	void *arg;
	int result;
	struct loop *loop;
	struct task *task;
	struct offload_job *next;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct offload_job *queue_head, *queue_tail;
static pthread_t threads[OFFLOAD_THREADS];
static unsigned nthreads;
static bool stopping;

static void job_done(void *arg)
{
	struct offload_job *job = arg;
	task_wake(job->task);
}

static void *pool_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&pool_lock);
	for (;;) {
		while (queue_head == NULL && !stopping)
			pthread_cond_wait(&pool_cond, &pool_lock);
		if (queue_head == NULL)
			break;
		struct offload_job *job = queue_head;
		queue_head = job->next;
		if (queue_head == NULL)
			queue_tail = NULL;
		pthread_mutex_unlock(&pool_lock);
		job->result = job->fn(job->arg);
		loop_post(job->loop, job_done, job);
		pthread_mutex_lock(&pool_lock);
	}
	pthread_mutex_unlock(&pool_lock);
	return NULL;
}

/* Called with pool_lock held. */
static bool pool_start_locked(void)
{
	while (nthreads < OFFLOAD_THREADS && !stopping) {
		if (pthread_create(&threads[nthreads], NULL, pool_main, NULL) != 0)
			break;
		nthreads++;
	}
	return nthreads > 0;
}

int offload_run(int (*fn)(void *arg), void *arg)
{
	struct task *t = task_current();
	struct loop *l = loop_current();
	if (t == NULL || l == NULL)
		return fn(arg);
	struct offload_job job = { .fn = fn, .arg = arg, .loop = l, .task = t };
	pthread_mutex_lock(&pool_lock);
	if (!pool_start_locked()) {
		pthread_mutex_unlock(&pool_lock);
		return fn(arg);
	}
	if (queue_tail != NULL)
		queue_tail->next = &job;
	else
		queue_head = &job;
	queue_tail = &job;
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
	task_suspend();
	return job.result;
}

void offload_shutdown(void)
{
	pthread_mutex_lock(&pool_lock);
	stopping = true;
	pthread_cond_broadcast(&pool_cond);
	unsigned n = nthreads;
	pthread_mutex_unlock(&pool_lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	nthreads = 0;
}
