/* console.c - see console.h. */
#include "engine/console.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One read per loop iteration: a flooding guest gets its turn like any fd,
 * and the socket's backlog, not our memory, absorbs the rest. */
#define CONSOLE_READ_CHUNK 65536
/* console_drain reads at most this much: a guest still writing cannot keep
 * an error path busy. */
#define CONSOLE_DRAIN_MAX (4u * CONSOLE_READ_CHUNK)

struct console_log {
	char *path, *old_path;
	int fd;
	size_t size, max;
	bool warned; /* a write failed: said once */
};

static int open_log(struct console_log *l, runm_error_t *err)
{
	close_and_reset(&l->fd);
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return runm_error_make(err, errno, "create `%s`", l->path);
	l->size = 0;
	return 0;
}

int console_log_open(const char *path, size_t max, struct console_log **out, runm_error_t *err)
{
	struct console_log *l = xzalloc(sizeof(*l));

	l->path = xstrdup(path);
	l->old_path = xasprintf("%s" CONSOLE_LOG_OLD_SUFFIX, path);
	l->fd = -1;
	l->max = max ? max : CONSOLE_LOG_MAX;
	/* A previous VM's console (a retry, a reused state dir) must not pass for this one's. */
	if (unlink(l->old_path) < 0 && errno != ENOENT) {
		runm_error_make(err, errno, "remove `%s`", l->old_path);
		console_log_close(l);
		return -1;
	}
	if (open_log(l, err) < 0) {
		console_log_close(l);
		return -1;
	}
	*out = l;
	return 0;
}

/* The full log becomes <path>.1 (rename replaces the older one atomically:
 * a reader sees one or the other), and a new one starts. */
static int rotate(struct console_log *l, runm_error_t *err)
{
	if (rename(l->path, l->old_path) < 0)
		return runm_error_make(err, errno, "rename `%s` to `%s`", l->path, l->old_path);
	return open_log(l, err);
}

int console_log_write(struct console_log *l, const void *buf, size_t len, runm_error_t *err)
{
	const char *p = buf;

	while (len > 0) {
		size_t n;
		if (l->size >= l->max && rotate(l, err) < 0)
			return -1;
		if (l->fd < 0)
			return runm_error_make(err, EBADF, "console log `%s` not open", l->path);
		n = l->max - l->size < len ? l->max - l->size : len;
		/* Counted even when the write fails: a failing disk must not turn
		 * into a file past the cap once it recovers. */
		l->size += n;
		if (write_all(l->fd, p, n) < 0)
			return runm_error_make(err, errno, "write `%s`", l->path);
		p += n;
		len -= n;
	}
	return 0;
}

size_t console_log_size(const struct console_log *l)
{
	return l->size;
}

void console_log_close(struct console_log *l)
{
	if (l == NULL)
		return;
	close_and_reset(&l->fd);
	free(l->path);
	free(l->old_path);
	free(l);
}

/* An fd and its log. */
struct console_src {
	int fd;
	struct loop_watch *w;
	struct console_log *log;
	char *buf; /* the console's */
};

struct console {
	struct loop *loop;
	struct console_src src[2]; /* the guest console, the VMM's output */
	size_t n;
	char *buf;
};

/* Read once; false when there is no more to read now (EAGAIN) or ever (EOF:
 * the VMM exited; an error). */
static bool read_once(struct console_src *c)
{
	ssize_t n = read(c->fd, c->buf, CONSOLE_READ_CHUNK);

	if (n < 0 && errno == EINTR)
		return true;
	if (n < 0 && errno == EAGAIN)
		return false;
	if (n <= 0) {
		loop_unwatch(c->w);
		c->w = NULL;
		return false;
	}
	{
		cleanup_error runm_error_t err = NULL;
		/* Keep reading whatever happens to the file: a guest must never
		 * wait on the host's disk. */
		if (console_log_write(c->log, c->buf, (size_t)n, &err) < 0 && !c->log->warned) {
			c->log->warned = true;
			log_warn("guest console: %s (console output lost)", runm_error_msg(err));
		}
	}
	return true;
}

static void on_console(struct loop *l, int fd, uint32_t events, void *data)
{
	(void)l;
	(void)fd;
	(void)events;
	read_once(data);
}

int console_add(struct console *c, int fd, const char *path, runm_error_t *err)
{
	struct console_src *s;

	if (c->n == ARRAY_SIZE(c->src))
		return runm_error_make(err, ENOSPC, "console: at most %zu logs", ARRAY_SIZE(c->src));
	s = &c->src[c->n];
	if (console_log_open(path, CONSOLE_LOG_MAX, &s->log, err) < 0)
		return -1;
	s->fd = fd;
	s->buf = c->buf;
	c->n++;
	set_nonblock(fd, 1);
	s->w = loop_watch_fd(c->loop, fd, EPOLLIN, on_console, s, err);
	return s->w ? 0 : -1;
}

int console_start(struct loop *loop, int fd, const char *path, struct console **out, runm_error_t *err)
{
	struct console *c = xzalloc(sizeof(*c));

	c->loop = loop;
	/* One buffer for all: reads are never nested. */
	c->buf = xmalloc(CONSOLE_READ_CHUNK);
	if (console_add(c, fd, path, err) < 0) {
		console_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void console_drain(struct console *c)
{
	if (c == NULL)
		return;
	for (size_t k = 0; k < c->n; k++)
		for (size_t i = 0; i < CONSOLE_DRAIN_MAX / CONSOLE_READ_CHUNK && c->src[k].w && read_once(&c->src[k]); i++)
			;
}

void console_free(struct console *c)
{
	if (c == NULL)
		return;
	for (size_t k = 0; k < c->n; k++) {
		loop_unwatch(c->src[k].w);
		console_log_close(c->src[k].log);
	}
	free(c->buf);
	free(c);
}
