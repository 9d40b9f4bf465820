/* loop.h - the one event loop of a runm process (shim, agent, cli): epoll over
 * fds, timers on timerfd, signals on signalfd, and deferred calls. Callbacks
 * run on the loop's thread; a watcher may be removed from inside any callback. */
#ifndef RUNM_LOOP_H
#define RUNM_LOOP_H

#include "error.h"

#include <signal.h>
#include <sys/epoll.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;

/* events: EPOLLIN/EPOLLOUT/EPOLLHUP/EPOLLERR bits as delivered by epoll. */
typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t events, void *data);
typedef void (*loop_timer_cb)(struct loop *loop, void *data);
typedef void (*loop_signal_cb)(struct loop *loop, int signo, void *data);
typedef void (*loop_defer_cb)(struct loop *loop, void *data);

int loop_new(struct loop **out, runm_error_t *err);
void loop_free(struct loop *loop);

/* Watch fd for `events` (EPOLLIN, EPOLLOUT). The loop does not own fd. */
struct loop_watch *loop_watch_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data,
				 runm_error_t *err);
/* Change the events; 0 pauses the watcher (the fd leaves the epoll set, so
 * hang-ups and errors wait too until it is resumed). */
int loop_watch_mod(struct loop_watch *w, uint32_t events);
/* Stop watching; safe from inside callbacks; NULL is a no-op. Does not close the fd. */
void loop_unwatch(struct loop_watch *w);

/* One-shot timer after ms milliseconds. Cancel before it fires with loop_timer_cancel
 * (NULL is a no-op); a fired timer is freed by the loop after its callback. */
struct loop_timer *loop_timer_add(struct loop *loop, uint64_t ms, loop_timer_cb cb, void *data);
void loop_timer_cancel(struct loop_timer *t);

/* Block the signals in `set` for the whole process and deliver them through a
 * signalfd to cb. Call once, before creating threads or children. */
int loop_signals(struct loop *loop, const sigset_t *set, loop_signal_cb cb, void *data, runm_error_t *err);

/* Run cb on the next loop iteration (never re-entrantly). */
void loop_defer(struct loop *loop, loop_defer_cb cb, void *data);

/* Run until loop_quit(). Returns 0, or -1 if epoll itself fails. */
int loop_run(struct loop *loop);
void loop_quit(struct loop *loop);
/* Run one iteration, waiting at most timeout_ms (-1 = forever). For tests. */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Run deferred calls until none are left (bounded), without waiting for
 * events: lets deferred closes finish before objects are freed at exit. */
void loop_settle(struct loop *loop);

#endif
