/* Unit tests of src/engine/console.c (the guest console's capped log) and
 * of vm_console_tail across a rotation: no file ever exceeds the cap, the
 * newest bytes are always kept (the last cap's worth at least, across the
 * log and its .1), a stale .1 goes at open, and the reader keeps the log
 * bounded while a socket is flooded, drains without the loop and stops at
 * EOF. */
#include "common/loop.h"
#include "common/util.h"
#include "engine/console.h"
#include "vm/vm-backend.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/runm-console-XXXXXX";
	return xstrdup(mkdtemp(tmpl));
}

/* Size of path, -1 if missing. */
static long long fsize(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static char *slurp(const char *path, size_t *len)
{
	char *s = NULL;
	if (read_file_at(AT_FDCWD, path, 1 << 26, &s, len, NULL) < 0)
		return NULL;
	return s;
}

/* Byte i of the test stream: a pattern that tells positions apart. */
static char pat(size_t i)
{
	return (char)('a' + (i * 7 + i / 26) % 26);
}

/* old + cur must be the stream's last bytes, cur its very end. */
static int ends_stream(const char *old, size_t olen, const char *cur, size_t clen, size_t total)
{
	size_t start = total - clen - olen;
	for (size_t i = 0; i < olen; i++)
		if (old[i] != pat(start + i))
			return 0;
	for (size_t i = 0; i < clen; i++)
		if (cur[i] != pat(start + olen + i))
			return 0;
	return 1;
}

TEST(capped_writer_rotates_and_keeps_the_newest)
{
	cleanup_free char *dir = tmpdir();
	cleanup_free char *path = xasprintf("%s/console.log", dir), *old = xasprintf("%s/console.log.1", dir);
	cleanup_free char *cur_s = NULL, *old_s = NULL;
	struct console_log *l = NULL;
	static const size_t sizes[] = { 1, 7, 333, 999, 1000, 1001, 4096 };
	const size_t max = 1000;
	size_t total = 0, clen = 0, olen = 0;
	char buf[4096];

	CHECK(console_log_open(path, max, &l, NULL) == 0);
	for (int round = 0; round < 20; round++) {
		size_t n = sizes[round % (sizeof(sizes) / sizeof(sizes[0]))];
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(total + i);
		CHECK(console_log_write(l, buf, n, NULL) == 0);
		total += n;
		/* After every write: neither file past the cap, the counter right. */
		CHECK(fsize(path) >= 0 && fsize(path) <= (long long)max);
		CHECK(fsize(old) <= (long long)max);
		CHECK_EQ_INT(console_log_size(l), fsize(path));
	}
	console_log_close(l);
	/* The current file holds what came after the last full one. */
	CHECK_EQ_INT(fsize(path), total % max == 0 ? max : total % max);
	CHECK_EQ_INT(fsize(old), max);
	cur_s = slurp(path, &clen);
	old_s = slurp(old, &olen);
	CHECK(cur_s && old_s);
	CHECK(ends_stream(old_s, olen, cur_s, clen, total));
	rm_rf(dir, NULL);
}

TEST(capped_writer_one_huge_write)
{
	cleanup_free char *dir = tmpdir();
	cleanup_free char *path = xasprintf("%s/console.log", dir), *old = xasprintf("%s/console.log.1", dir);
	cleanup_free char *cur_s = NULL, *old_s = NULL, *buf = NULL;
	struct console_log *l = NULL;
	const size_t max = 4096, total = 5 * 4096 + 123;
	size_t clen = 0, olen = 0;

	buf = xmalloc(total);
	for (size_t i = 0; i < total; i++)
		buf[i] = pat(i);
	CHECK(console_log_open(path, max, &l, NULL) == 0);
	CHECK(console_log_write(l, buf, total, NULL) == 0);
	console_log_close(l);
	CHECK_EQ_INT(fsize(path), 123);
	CHECK_EQ_INT(fsize(old), max);
	cur_s = slurp(path, &clen);
	old_s = slurp(old, &olen);
	CHECK(cur_s && old_s);
	CHECK(ends_stream(old_s, olen, cur_s, clen, total));
	rm_rf(dir, NULL);
}

TEST(open_truncates_and_removes_a_stale_rotation)
{
	cleanup_free char *dir = tmpdir();
	cleanup_free char *path = xasprintf("%s/console.log", dir), *old = xasprintf("%s/console.log.1", dir);
	struct console_log *l = NULL;

	CHECK(write_file_atomic(path, "previous VM\n", 12, 0600, NULL) == 0);
	CHECK(write_file_atomic(old, "older\n", 6, 0600, NULL) == 0);
	CHECK(console_log_open(path, 0, &l, NULL) == 0);
	CHECK_EQ_INT(fsize(path), 0);
	CHECK_EQ_INT(fsize(old), -1);
	CHECK(console_log_write(l, "x", 1, NULL) == 0);
	console_log_close(l);
	CHECK_EQ_INT(fsize(path), 1);
	/* A symlink planted at the path is not followed. */
	unlink(path);
	CHECK(symlink("/tmp/runm-console-target-never", path) == 0);
	CHECK(console_log_open(path, 0, &l, NULL) < 0);
	CHECK(access("/tmp/runm-console-target-never", F_OK) < 0);
	rm_rf(dir, NULL);
}

TEST(console_tail_spans_the_rotation)
{
	cleanup_free char *dir = tmpdir();
	cleanup_free char *tail = NULL, *small = NULL;
	struct vm vm = { .ops = &vm_qemu_backend };

	vm.console_path = xasprintf("%s/console.log", dir);
	vm.console_old_path = xasprintf("%s/console.log.1", dir);
	vm.vmm_log_path = xasprintf("%s/vmm.log", dir); /* missing: all the budget for the console */
	CHECK(write_file_atomic(vm.console_old_path, "old line 1\nold line 2\n", 22, 0600, NULL) == 0);
	CHECK(write_file_atomic(vm.console_path, "new\n", 4, 0600, NULL) == 0);
	tail = vm_console_tail(&vm, 15);
	CHECK_STR(tail, "old line 2\nnew\n");
	/* Enough in the current log: the old one is not read. */
	small = vm_console_tail(&vm, 3);
	CHECK_STR(small, "ew\n");
	free(vm.console_path);
	free(vm.console_old_path);
	free(vm.vmm_log_path);
	rm_rf(dir, NULL);
}

TEST(reader_stays_bounded_under_a_flood_and_stops_at_eof)
{
	cleanup_free char *dir = tmpdir();
	cleanup_free char *path = xasprintf("%s/console.log", dir), *old = xasprintf("%s/console.log.1", dir);
	cleanup_free char *buf = xmalloc(65536), *cur_s = NULL;
	struct loop *loop = NULL;
	struct console *c = NULL;
	int sv[2];
	size_t sent = 0, clen = 0;
	const size_t total = 3 * CONSOLE_LOG_MAX + 777;

	CHECK(loop_new(&loop, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(console_start(loop, sv[0], path, &c, NULL) == 0);
	set_nonblock(sv[1], 1);
	while (sent < total) {
		size_t n = total - sent < 65536 ? total - sent : 65536;
		ssize_t w;
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(sent + i);
		w = write(sv[1], buf, n);
		if (w < 0 && errno == EAGAIN) {
			/* The socket is full: what the guest's UART waits on. */
			CHECK(loop_run_once(loop, 1000) >= 0);
			continue;
		}
		CHECK(w > 0);
		/* Re-send what did not fit: the pattern follows `sent`. */
		sent += (size_t)w;
		CHECK(fsize(path) <= CONSOLE_LOG_MAX && fsize(old) <= CONSOLE_LOG_MAX);
	}
	/* What is still in the socket, without the loop. */
	console_drain(c);
	console_drain(c);
	CHECK_EQ_INT(fsize(path), total % CONSOLE_LOG_MAX);
	CHECK_EQ_INT(fsize(old), CONSOLE_LOG_MAX);
	cur_s = slurp(path, &clen);
	CHECK(cur_s && clen == total % CONSOLE_LOG_MAX && cur_s[clen - 1] == pat(total - 1));
	/* The VMM's end closes: the reader stops (no busy loop on a dead fd). */
	close(sv[1]);
	CHECK(loop_run_once(loop, 100) >= 0);
	CHECK(loop_run_once(loop, 0) >= 0);
	console_free(c);
	close(sv[0]);
	loop_free(loop);
	rm_rf(dir, NULL);
}

TEST(second_source_has_its_own_log)
{
	cleanup_free char *dir = tmpdir();
	cleanup_free char *con = xasprintf("%s/console.log", dir), *vmm = xasprintf("%s/vmm.log", dir);
	cleanup_free char *s = NULL;
	struct loop *loop = NULL;
	struct console *c = NULL;
	int a[2], b[2];
	size_t len = 0;

	CHECK(loop_new(&loop, NULL) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) == 0);
	CHECK(pipe2(b, O_CLOEXEC) == 0);
	CHECK(console_start(loop, a[0], con, &c, NULL) == 0);
	CHECK(console_add(c, b[0], vmm, NULL) == 0);
	/* At most two: a third is refused, nothing leaks. */
	CHECK(console_add(c, b[0], vmm, NULL) < 0);
	CHECK(write(a[1], "guest\n", 6) == 6);
	CHECK(write(b[1], "qemu: oops\n", 11) == 11);
	/* The VMM exited: its output is still read, before anyone looks. */
	close(b[1]);
	console_drain(c);
	s = slurp(vmm, &len);
	CHECK_STR(s, "qemu: oops\n");
	free(s);
	s = slurp(con, &len);
	CHECK_STR(s, "guest\n");
	console_free(c);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	loop_free(loop);
	rm_rf(dir, NULL);
}
