/* util.h - allocation that aborts on OOM, cleanup attributes for owned
 * resources, and small fd/file helpers used by every part of runm. */
#ifndef RUNM_UTIL_H
#define RUNM_UTIL_H

#include "error.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Allocation: abort with a message on OOM, so call sites read straight. */
void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

/* Cleanup attributes (crun style). Hand off ownership with steal_ptr/steal_fd. */
void cleanup_freep(void *p);
void cleanup_closep(int *fd);
void cleanup_fclosep(FILE **f);
void cleanup_strvp(char ***v);
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_file __attribute__((cleanup(cleanup_fclosep)))
#define cleanup_strv __attribute__((cleanup(cleanup_strvp)))

static inline void *steal_ptr_(void **pp)
{
	void *p = *pp;
	*pp = NULL;
	return p;
}
#define steal_ptr(pp) steal_ptr_((void **)(pp))
static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* Close if >= 0 and set to -1. */
void close_and_reset(int *fd);

/* NULL-terminated string vectors. */
size_t strv_len(char *const *v);
void strv_push(char ***v, const char *s); /* copies s */
void strv_free(char **v);

/* I/O helpers, EINTR handled. write_all returns 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read a whole file (at most max bytes; larger is an error). *out is NUL-terminated. */
int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len, runm_error_t *err);
/* Write a whole file atomically: write path.tmp, fsync-less rename. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, runm_error_t *err);
int mkdir_p(const char *path, mode_t mode, runm_error_t *err);
/* Remove a directory tree (no symlink following; refuses to descend into a
 * mount point below path). Missing is success. */
int rm_rf(const char *path, runm_error_t *err);
int set_nonblock(int fd, int on);
int set_cloexec(int fd, int on);

/* Monotonic and realtime clocks in ns. */
uint64_t now_mono_ns(void);
uint64_t now_real_ns(void);

/* The executable `name` in $PATH (a name with a '/' is taken as a path),
 * malloc'd; NULL if there is none. */
char *find_in_path(const char *name);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Unix stream sockets by path (abstract when path starts with '@'):
 * a listening socket (any stale socket file replaced), or a connected one.
 * Both close-on-exec. */
int unix_listen(const char *path, runm_error_t *err);
int unix_connect(const char *path, runm_error_t *err);

#endif
