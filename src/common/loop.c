/* loop.c - see loop.h. Watchers are heap objects referenced from epoll's data;
 * removal only marks them dead, and dead ones are freed after the current
 * batch of events, so a callback may remove any watcher, itself included. */
#include "loop.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum watch_kind { W_FD, W_TIMER, W_SIGNAL };

/* A timer and the signal watcher are fd watchers on an fd the loop owns;
 * `w` must stay the first member so a watcher pointer is the object pointer. */
struct loop_watch {
	struct loop *loop;
	enum watch_kind kind;
	int fd;
	bool dead;
	bool parked; /* removed from epoll while its event mask is empty */
	loop_fd_cb cb;
	void *data;
	struct loop_watch *next_dead;
	struct loop_watch *prev, *next; /* live watchers, so loop_free releases them */
};

struct loop_timer {
	struct loop_watch w;
	loop_timer_cb cb;
	void *data;
};

struct defer {
	loop_defer_cb cb;
	void *data;
	struct defer *next;
};

struct loop {
	int epfd;
	bool quit;
	struct loop_watch *dead;
	struct loop_watch *live;
	struct defer *defer_head, *defer_tail;
	loop_signal_cb sig_cb;
	void *sig_data;
};

int loop_new(struct loop **out, runm_error_t *err)
{
	struct loop *l = xzalloc(sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return runm_error_make(err, errno, "epoll_create1");
	}
	*out = l;
	return 0;
}

static void reap_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_watch *w = l->dead;
		l->dead = w->next_dead;
		if (w->kind != W_FD)
			close(w->fd);
		free(w); /* for timers, w is the first member */
	}
}

void loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	while (l->live)
		loop_unwatch(l->live);
	reap_dead(l);
	while (l->defer_head) {
		struct defer *d = l->defer_head;
		l->defer_head = d->next;
		free(d);
	}
	close(l->epfd);
	free(l);
}

static struct loop_watch *watch_add(struct loop *l, struct loop_watch *w, uint32_t events, runm_error_t *err)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) {
		runm_error_make(err, errno, "epoll_ctl add fd %d", w->fd);
		if (w->kind != W_FD)
			close(w->fd);
		free(w);
		return NULL;
	}
	w->next = l->live;
	if (l->live)
		l->live->prev = w;
	l->live = w;
	return w;
}

struct loop_watch *loop_watch_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *data,
				 runm_error_t *err)
{
	struct loop_watch *w = xzalloc(sizeof(*w));
	w->loop = l;
	w->kind = W_FD;
	w->fd = fd;
	w->cb = cb;
	w->data = data;
	if (watch_add(l, w, events, err) == NULL)
		return NULL;
	/* Added once to learn that the fd can be polled at all (regular files
	 * cannot: EPERM); with no events it then waits outside the set. */
	if (events == 0)
		loop_watch_mod(w, 0);
	return w;
}

int loop_watch_mod(struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	int rc;

	/* epoll reports EPOLLHUP and EPOLLERR whatever the mask: a watcher
	 * paused with an empty mask on a hung-up pipe would spin. Paused
	 * watchers leave the epoll set instead. */
	if (events == 0) {
		if (!w->parked && epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL) < 0)
			return -1;
		w->parked = true;
		return 0;
	}
	rc = epoll_ctl(w->loop->epfd, w->parked ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, w->fd, &ev);
	if (rc == 0)
		w->parked = false;
	return rc;
}

void loop_unwatch(struct loop_watch *w)
{
	if (w == NULL || w->dead)
		return;
	w->dead = true;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->loop->live = w->next;
	if (w->next)
		w->next->prev = w->prev;
	/* The fd may already be closed by its owner (then the kernel dropped it). */
	if (!w->parked)
		epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->next_dead = w->loop->dead;
	w->loop->dead = w;
}

static void timer_fired(struct loop *l, int fd, uint32_t events, void *data)
{
	struct loop_timer *t = data;
	(void)fd;
	(void)events;
	if (t->w.dead)
		return;
	loop_unwatch(&t->w); /* one-shot: freed after this batch */
	t->cb(l, t->data);
}

struct loop_timer *loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *data)
{
	struct loop_timer *t = xzalloc(sizeof(*t));
	struct itimerspec its = { 0 };
	runm_error_t err = NULL;

	t->w.loop = l;
	t->w.kind = W_TIMER;
	t->w.cb = timer_fired;
	t->w.data = t;
	t->cb = cb;
	t->data = data;
	t->w.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->w.fd < 0) {
		/* Out of fds: a timer is a deadline we must not silently drop. */
		log_error("timerfd_create: %s", strerror(errno));
		abort();
	}
	if (ms == 0)
		ms = 1; /* an all-zero it_value disarms */
	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	timerfd_settime(t->w.fd, 0, &its, NULL);
	if (watch_add(l, &t->w, EPOLLIN, &err) == NULL) {
		log_error("%s", runm_error_msg(err));
		abort();
	}
	return t;
}

void loop_timer_cancel(struct loop_timer *t)
{
	if (t)
		loop_unwatch(&t->w);
}

static void signal_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;
	(void)events;
	(void)data;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		l->sig_cb(l, (int)si.ssi_signo, l->sig_data);
}

int loop_signals(struct loop *l, const sigset_t *set, loop_signal_cb cb, void *data, runm_error_t *err)
{
	struct loop_watch *w;
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return runm_error_make(err, errno, "sigprocmask");
	w = xzalloc(sizeof(*w));
	w->loop = l;
	w->kind = W_SIGNAL;
	w->cb = signal_ready;
	w->fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (w->fd < 0) {
		free(w);
		return runm_error_make(err, errno, "signalfd");
	}
	l->sig_cb = cb;
	l->sig_data = data;
	return watch_add(l, w, EPOLLIN, err) ? 0 : -1;
}

void loop_defer(struct loop *l, loop_defer_cb cb, void *data)
{
	struct defer *d = xzalloc(sizeof(*d));
	d->cb = cb;
	d->data = data;
	if (l->defer_tail)
		l->defer_tail->next = d;
	else
		l->defer_head = d;
	l->defer_tail = d;
}

static void run_deferred(struct loop *l)
{
	/* Only what was queued before we started: a deferred call that defers
	 * again runs on the next iteration, not in a busy loop here. */
	struct defer *d = l->defer_head;
	l->defer_head = l->defer_tail = NULL;
	while (d) {
		struct defer *next = d->next;
		d->cb(l, d->data);
		free(d);
		d = next;
	}
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[64];
	int n;

	/* Deferred calls may have changed what the caller waits for (a
	 * connection's close answers its pending calls): if any ran, only poll,
	 * so the caller gets to look before we sleep. */
	if (l->defer_head) {
		run_deferred(l);
		timeout_ms = 0;
	}
	n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		log_error("epoll_wait: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;
		if (w->dead)
			continue;
		w->cb(l, w->fd, evs[i].events, w->data);
	}
	reap_dead(l);
	return 0;
}

void loop_settle(struct loop *l)
{
	for (int i = 0; i < 100 && l->defer_head; i++)
		run_deferred(l);
	reap_dead(l);
}

int loop_run(struct loop *l)
{
	l->quit = false;
	while (!l->quit) {
		if (loop_run_once(l, -1) < 0)
			return -1;
	}
	return 0;
}

void loop_quit(struct loop *l)
{
	l->quit = true;
}
