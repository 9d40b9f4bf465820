/* util.c - see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void oom(size_t n)
{
	fprintf(stderr, "runm: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *xzalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

char *xstrdup(const char *s)
{
	char *r = strdup(s ? s : "");
	if (r == NULL)
		oom(s ? strlen(s) : 1);
	return r;
}

char *xstrndup(const char *s, size_t n)
{
	char *r = strndup(s, n);
	if (r == NULL)
		oom(n);
	return r;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *r;
	if (vasprintf(&r, fmt, ap) < 0)
		oom(strlen(fmt));
	return r;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *r;
	va_start(ap, fmt);
	r = xvasprintf(fmt, ap);
	va_end(ap);
	return r;
}

void cleanup_freep(void *p)
{
	void **pp = p;
	free(*pp);
	*pp = NULL;
}

void close_and_reset(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = -1;
}

void cleanup_closep(int *fd)
{
	close_and_reset(fd);
}

void cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
	*f = NULL;
}

size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void strv_push(char ***v, const char *s)
{
	size_t n = strv_len(*v);
	*v = xrealloc(*v, (n + 2) * sizeof(char *));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void cleanup_strvp(char ***v)
{
	strv_free(*v);
	*v = NULL;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len, runm_error_t *err)
{
	cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	cleanup_free char *buf = NULL;
	size_t used = 0, cap = 4096;

	if (fd < 0)
		return runm_error_make(err, errno, "open `%s`", path);
	buf = xmalloc(cap);
	for (;;) {
		ssize_t r;
		if (used + 1 >= cap) {
			if (cap > max + 1)
				return runm_error_make(err, EFBIG, "read `%s`: larger than %zu bytes", path, max);
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = read(fd, buf + used, cap - used - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return runm_error_make(err, errno, "read `%s`", path);
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > max)
			return runm_error_make(err, EFBIG, "read `%s`: larger than %zu bytes", path, max);
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = steal_ptr(&buf);
	return 0;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, runm_error_t *err)
{
	/* Per-process temp name: two writers must not share (and rename) one file. */
	cleanup_free char *tmp = xasprintf("%s.%d.tmp", path, (int)getpid());
	cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0)
		return runm_error_make(err, errno, "create `%s`", tmp);
	if (write_all(fd, buf, len) < 0) {
		int e = errno;
		unlink(tmp);
		return runm_error_make(err, e, "write `%s`", tmp);
	}
	/* Durable before visible: a crash must not leave an empty file behind
	 * the final name. */
	if (fsync(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return runm_error_make(err, e, "rename `%s` to `%s`", tmp, path);
	}
	return 0;
}

int mkdir_p(const char *path, mode_t mode, runm_error_t *err)
{
	cleanup_free char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return runm_error_make(err, errno, "mkdir `%s`", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return runm_error_make(err, errno, "mkdir `%s`", p);
	return 0;
}

/* The id of the mount fd is on, 0 if the kernel does not say (before 5.8). */
static uint64_t mount_id(int fd)
{
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) < 0 || !(stx.stx_mask & STATX_MNT_ID))
		return 0;
	return stx.stx_mnt_id;
}

/* parent_mnt: the mount of the directory holding name, 0 = unknown. */
static int rm_rf_at(int dirfd, const char *name, uint64_t parent_mnt, runm_error_t *err)
{
	int fd;
	DIR *d;
	struct dirent *de;
	uint64_t mnt;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return runm_error_make(err, errno, "unlink `%s`", name);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return runm_error_make(err, errno, "open `%s`", name);
	/* Never into a mount point below the top: it may be a host directory
	 * bound there (a container's, for its VM) whose files are not ours. */
	mnt = mount_id(fd);
	if (parent_mnt && mnt && mnt != parent_mnt) {
		close(fd);
		return runm_error_make(err, EBUSY, "`%s` is a mount point: not removing what it holds", name);
	}
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return runm_error_make(err, errno, "fdopendir `%s`", name);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (rm_rf_at(fd, de->d_name, mnt, err) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return runm_error_make(err, errno, "rmdir `%s`", name);
	return 0;
}

int rm_rf(const char *path, runm_error_t *err)
{
	return rm_rf_at(AT_FDCWD, path, 0, err);
}

int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int set_cloexec(int fd, int on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl);
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t now_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* A close-on-exec unix stream socket and the address for path. A path too
 * long for sun_path (108 bytes: Docker's runtime root plus a 64-hex id
 * passes it) is reached through its directory, opened here and named as
 * /proc/self/fd/N/NAME; *dirfd then holds that fd until the bind or
 * connect is done. */
static int unix_socket(const char *path, struct sockaddr_un *sa, socklen_t *len, int *dirfd, runm_error_t *err)
{
	size_t n = strlen(path);
	char shortp[64];
	int fd;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n >= sizeof(sa->sun_path) && path[0] == '/') {
		const char *slash = strrchr(path, '/');
		cleanup_free char *dir = xstrndup(path, (size_t)(slash - path) + 1);
		if (strlen(slash + 1) + 32 >= sizeof(sa->sun_path))
			return runm_error_make(err, ENAMETOOLONG, "socket path `%s`", path);
		*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (*dirfd < 0)
			return runm_error_make(err, errno, "socket directory `%s`", dir);
		snprintf(shortp, sizeof(shortp), "/proc/self/fd/%d/%s", *dirfd, slash + 1);
		path = shortp;
		n = strlen(path);
	}
	if (n == 0 || n >= sizeof(sa->sun_path))
		return runm_error_make(err, ENAMETOOLONG, "socket path `%s`", path);
	memcpy(sa->sun_path, path, n);
	if (path[0] == '@')
		sa->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return runm_error_make(err, errno, "socket");
	return fd;
}

int unix_listen(const char *path, runm_error_t *err)
{
	struct sockaddr_un sa;
	socklen_t len;
	cleanup_close int dirfd = -1;
	cleanup_close int fd = unix_socket(path, &sa, &len, &dirfd, err);

	if (fd < 0)
		return -1;
	if (path[0] != '@')
		unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0)
		return runm_error_make(err, errno, "bind `%s`", path);
	if (listen(fd, 64) < 0)
		return runm_error_make(err, errno, "listen on `%s`", path);
	return steal_fd(&fd);
}

int unix_connect(const char *path, runm_error_t *err)
{
	struct sockaddr_un sa;
	socklen_t len;
	cleanup_close int dirfd = -1;
	cleanup_close int fd = unix_socket(path, &sa, &len, &dirfd, err);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0)
		return runm_error_make(err, errno, "connect to `%s`", path);
	return steal_fd(&fd);
}

char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	cleanup_free char *dirs = NULL;
	char *save = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	dirs = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		cleanup_free char *p = xasprintf("%s/%s", *d ? d : ".", name);
		if (access(p, X_OK) == 0)
			return steal_ptr(&p);
	}
	return NULL;
}
