/* Unit tests of src/agent/share.c's check of the paths the host sends into
 * the VM's share (share_resolve): only plain relative paths that stay under
 * the share once symlinks are resolved. The agent's sources are not in the
 * host library, so the file is compiled in here. */
#include "../../src/agent/share.c"

#include "harness.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char *root;

static void make_root(void)
{
	char tmpl[] = "/tmp/runm-test-share-XXXXXX";
	cleanup_free char *a = NULL, *b = NULL;
	if (root)
		return;
	if (mkdtemp(tmpl) == NULL)
		abort();
	root = realpath(tmpl, NULL);
	a = xasprintf("%s/c1", root);
	b = xasprintf("%s/c1/m0", root);
	if (mkdir(a, 0700) < 0 || mkdir(b, 0700) < 0)
		abort();
	free(a);
	free(b);
	a = xasprintf("%s/c1/out", root);
	b = xasprintf("%s/c1/in", root);
	if (symlink("/etc", a) < 0 || symlink("m0", b) < 0)
		abort();
	free(a);
	a = xasprintf("%s/c1/up", root);
	if (symlink("../..", a) < 0)
		abort();
}

static int resolve(const char *rel, char **out)
{
	cleanup_error runm_error_t err = NULL;
	int r = share_resolve(root, rel, out, &err);
	if (r < 0)
		fprintf(stderr, "    (%s: %s)\n", rel, runm_error_msg(err));
	return r;
}

TEST(plain_paths_resolve)
{
	cleanup_free char *p = NULL, *want = NULL;
	make_root();
	CHECK(resolve("c1/m0", &p) == 0);
	want = xasprintf("%s/c1/m0", root);
	CHECK_STR(p, want);
	free(p);
	p = NULL;
	/* a symlink that stays in the share is fine */
	CHECK(resolve("c1/in", &p) == 0);
	CHECK_STR(p, want);
}

TEST(lexically_bad_paths_are_refused)
{
	static const char *const bad[] = { "", "/c1/m0", "..", "../x", "c1/../c1/m0", "c1/./m0", ".",
					   "c1//m0", "c1/m0/", "./c1", "c1/.." };
	char *p = NULL;
	make_root();
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(resolve(bad[i], &p) < 0 && p == NULL);
	CHECK(resolve(NULL, &p) < 0);
}

TEST(symlinks_out_of_the_share_are_refused)
{
	char *p = NULL;
	make_root();
	CHECK(resolve("c1/out", &p) < 0 && p == NULL);
	CHECK(resolve("c1/up", &p) < 0 && p == NULL);
	CHECK(resolve("c1/missing", &p) < 0 && p == NULL);
}

TEST(a_sibling_with_the_root_as_prefix_is_outside)
{
	cleanup_free char *sib = NULL, *link = NULL;
	char *p = NULL;
	make_root();
	/* <root>x is not under <root>/ */
	sib = xasprintf("%sx", root);
	link = xasprintf("%s/c1/sib", root);
	CHECK(mkdir(sib, 0700) == 0 || errno == EEXIST);
	CHECK(symlink(sib, link) == 0 || errno == EEXIST);
	CHECK(resolve("c1/sib", &p) < 0 && p == NULL);
	rmdir(sib);
}

__attribute__((destructor)) static void remove_root(void)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *sib = root ? xasprintf("%sx", root) : NULL;
	if (root && rm_rf(root, &err) < 0)
		fprintf(stderr, "%s\n", runm_error_msg(err));
	if (sib)
		rmdir(sib);
	free(root);
}
