/* Unit tests of src/agent/crun.c's start without crun (crun_start_fifo):
 * crun's exec.fifo protocol played by a reader standing in for the
 * container's init (crun create's end). The agent's sources are not in the
 * host library, so the file is compiled in here. */
#include "../../src/agent/crun.c"

#include "harness.h"

#include <stdio.h>
#include <sys/stat.h>

/* A crun root with <root>/c1/ (and its exec.fifo when fifo is set). */
static char *make_root(bool fifo)
{
	char tmpl[] = "/tmp/runm-test-crun-XXXXXX";
	cleanup_free char *dir = NULL, *path = NULL;
	if (mkdtemp(tmpl) == NULL)
		abort();
	dir = xasprintf("%s/c1", tmpl);
	path = xasprintf("%s/exec.fifo", dir);
	if (mkdir(dir, 0700) < 0 || (fifo && mkfifo(path, 0600) < 0))
		abort();
	return xstrdup(tmpl);
}

static void remove_root(char *root)
{
	cleanup_error runm_error_t err = NULL;
	if (rm_rf(root, &err) < 0)
		fprintf(stderr, "%s\n", runm_error_msg(err));
	free(root);
}

TEST(start_releases_the_reader_and_removes_the_fifo)
{
	char *root = make_root(true);
	cleanup_free char *path = xasprintf("%s/c1/exec.fifo", root);
	cleanup_error runm_error_t err = NULL;
	/* As crun create leaves it: the init holds the read end. */
	cleanup_close int rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	char byte = 'x';
	struct stat st;
	int r;

	CHECK(rd >= 0);
	r = crun_start_fifo(root, "c1", &err);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(read(rd, &byte, 1), 1);
	CHECK_EQ_INT(byte, 0);
	/* crun's state reads "running" once the fifo is gone. */
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	remove_root(root);
}

TEST(start_with_no_reader_fails_at_once)
{
	char *root = make_root(true);
	cleanup_error runm_error_t err = NULL;
	/* The init died before start: crun's blocking open would hang here. */
	int r = crun_start_fifo(root, "c1", &err);
	CHECK_EQ_INT(r, -1);
	CHECK(strstr(runm_error_msg(err), "exited before start") != NULL);
	remove_root(root);
}

TEST(start_twice_or_never_created_fails_clearly)
{
	char *root = make_root(false);
	cleanup_error runm_error_t err = NULL;
	int r = crun_start_fifo(root, "c1", &err);
	CHECK_EQ_INT(r, -1);
	CHECK(strstr(runm_error_msg(err), "started already") != NULL);
	remove_root(root);
}
