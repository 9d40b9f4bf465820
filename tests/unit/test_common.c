/* Unit tests of src/common: errors, helpers, the event loop. */
#include "common/error.h"
#include "common/loop.h"
#include "common/util.h"
#include "harness.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

static int fail_enoent(runm_error_t *err)
{
	return runm_error_make(err, ENOENT, "open `%s`", "x");
}

TEST(error_wrap)
{
	cleanup_error runm_error_t err = NULL;
	CHECK(fail_enoent(&err) < 0);
	runm_error_wrap(&err, "create task %s", "c1");
	CHECK_STR(runm_error_msg(err), "create task c1: open `x`: No such file or directory");
	CHECK_EQ_INT(err->status, ENOENT);
}

static void on_timer(struct loop *l, void *data)
{
	(*(int *)data)++;
	loop_quit(l);
}

static void on_pipe(struct loop *l, int fd, uint32_t ev, void *data)
{
	char c;
	(void)l;
	(void)ev;
	if (read(fd, &c, 1) == 1)
		*(char *)data = c;
}

TEST(loop_timer_and_fd)
{
	struct loop *l = NULL;
	int fired = 0, p[2];
	char got = 0;
	struct loop_timer *cancelled;
	CHECK(loop_new(&l, NULL) == 0);
	CHECK(pipe(p) == 0);
	CHECK(loop_watch_fd(l, p[0], EPOLLIN, on_pipe, &got, NULL) != NULL);
	CHECK(write(p[1], "z", 1) == 1);
	cancelled = loop_timer_add(l, 1, on_timer, &fired);
	loop_timer_cancel(cancelled);
	loop_timer_add(l, 20, on_timer, &fired);
	CHECK(loop_run(l) == 0);
	CHECK_EQ_INT(fired, 1);
	CHECK_EQ_INT(got, 'z');
	loop_free(l);
	close(p[0]);
	close(p[1]);
}

static void set_flag(struct loop *l, void *data)
{
	(void)l;
	*(int *)data = 1;
}

static void hup_count(struct loop *l, int fd, uint32_t ev, void *data)
{
	(void)l;
	(void)fd;
	(void)ev;
	(*(int *)data)++;
}

/* A deferred call that ends what the caller waits for must not be followed
 * by an endless sleep in the same iteration (a `runm state` hung that way). */
TEST(deferred_then_no_sleep)
{
	struct loop *l;
	int flag = 0;
	CHECK(loop_new(&l, NULL) == 0);
	loop_defer(l, set_flag, &flag);
	loop_run_once(l, -1); /* would block forever before the fix */
	CHECK_EQ_INT(flag, 1);
	loop_free(l);
}

/* A paused watcher is not woken by a hang-up (epoll reports EPOLLHUP
 * whatever the mask): no busy loop on a closed pipe. */
TEST(paused_watch_ignores_hangup)
{
	struct loop *l;
	int p[2], hits = 0;
	struct loop_watch *w;
	CHECK(loop_new(&l, NULL) == 0);
	CHECK(pipe(p) == 0);
	w = loop_watch_fd(l, p[1], 0, hup_count, &hits, NULL);
	CHECK(w != NULL);
	close(p[0]); /* the reader goes: EPOLLERR on the write end */
	loop_run_once(l, 0);
	CHECK_EQ_INT(hits, 0);
	loop_watch_mod(w, EPOLLOUT);
	loop_run_once(l, 0);
	CHECK_EQ_INT(hits, 1);
	loop_watch_mod(w, 0);
	loop_run_once(l, 0);
	CHECK_EQ_INT(hits, 1);
	loop_unwatch(w);
	close(p[1]);
	loop_free(l);
}
