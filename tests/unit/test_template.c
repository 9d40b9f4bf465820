/* Unit tests of src/vm/template.c: what a VM template's key covers (the
 * configuration a migration must match) and what it leaves out (what
 * differs per VM and is not in the migration stream), and the sweep of what
 * dead processes left in the template root. */
#include "vm/vm.h"
#include "vm/vm-backend.h"
#include "common/util.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture {
	char *dir, *kernel, *initrd;
	struct vm_share share;
	struct vm_config cfg;
};

static void fixture_init(struct fixture *f)
{
	char tmpl[] = "/tmp/runm-test-template-XXXXXX";
	memset(f, 0, sizeof(*f));
	f->dir = xstrdup(mkdtemp(tmpl));
	f->kernel = xasprintf("%s/vmlinuz", f->dir);
	f->initrd = xasprintf("%s/initrd.img", f->dir);
	write_file_atomic(f->kernel, "k", 1, 0644, NULL);
	write_file_atomic(f->initrd, "i", 1, 0644, NULL);
	f->share = (struct vm_share){ .host_path = "/run/a/shared", .tag = "shared" };
	f->cfg = (struct vm_config){ .kernel = f->kernel, .initrd = f->initrd, .mem_mib = 256, .vcpus = 1,
				     .shares = &f->share, .n_shares = 1, .network = true, .state_dir = f->dir,
				     /* any executable: the key takes the binary's identity, never runs it */
				     .qemu_binary = "/bin/sh", .warm = true };
}

static void fixture_release(struct fixture *f)
{
	rm_rf(f->dir, NULL);
	free(f->dir);
	free(f->kernel);
	free(f->initrd);
}

static char *key_of(const struct vm_config *cfg, const char *accel)
{
	cleanup_error runm_error_t err = NULL;
	char *desc = NULL, *key = NULL;
	if (vm_template_describe(cfg, accel, &desc, &key, &err) < 0)
		return NULL;
	free(desc);
	return key;
}

TEST(template_key_covers_the_vm_configuration)
{
	struct fixture f;
	cleanup_free char *base = NULL, *mem = NULL, *cpus = NULL, *accel = NULL, *nonet = NULL, *extra = NULL,
			  *again = NULL, *touched = NULL;
	struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };

	fixture_init(&f);
	base = key_of(&f.cfg, "tcg");
	CHECK(base != NULL && strlen(base) == 16);
	again = key_of(&f.cfg, "tcg");
	CHECK_STR(again, base); /* stable */
	f.cfg.mem_mib = 512;
	mem = key_of(&f.cfg, "tcg");
	f.cfg.mem_mib = 256;
	f.cfg.vcpus = 2;
	cpus = key_of(&f.cfg, "tcg");
	f.cfg.vcpus = 1;
	accel = key_of(&f.cfg, "kvm");
	f.cfg.network = false;
	nonet = key_of(&f.cfg, "tcg");
	f.cfg.network = true;
	f.cfg.cmdline_extra = "debug";
	extra = key_of(&f.cfg, "tcg");
	f.cfg.cmdline_extra = NULL;
	/* A rebuilt initramfs (new mtime) is another guest. */
	CHECK(utimensat(AT_FDCWD, f.initrd, ts, 0) == 0);
	touched = key_of(&f.cfg, "tcg");
	CHECK(mem && strcmp(mem, base) != 0);
	CHECK(cpus && strcmp(cpus, base) != 0);
	CHECK(accel && strcmp(accel, base) != 0);
	CHECK(nonet && strcmp(nonet, base) != 0);
	CHECK(extra && strcmp(extra, base) != 0);
	CHECK(touched && strcmp(touched, base) != 0);
	fixture_release(&f);
}

TEST(template_key_leaves_out_what_differs_per_vm)
{
	struct fixture f;
	struct vm_port ports[] = { { .host_port = 8080, .guest_port = 80 } };
	cleanup_free char *base = NULL, *other = NULL, *tap = NULL, *tap2 = NULL;
	cleanup_error runm_error_t err = NULL;
	char *desc = NULL, *key = NULL;

	fixture_init(&f);
	base = key_of(&f.cfg, "tcg");
	/* Another VM: its own state dir (console log), share path, published ports. */
	f.share.host_path = "/run/b/shared";
	f.cfg.state_dir = "/tmp";
	f.cfg.ports = ports;
	f.cfg.n_ports = 1;
	other = key_of(&f.cfg, "tcg");
	CHECK(base != NULL);
	CHECK(other != NULL && strcmp(other, base) == 0);
	/* A NIC on a tap (any fd: it is passed as fd 5) is another network mode. */
	f.cfg.tap_fd = 7;
	tap = key_of(&f.cfg, "tcg");
	f.cfg.tap_fd = 9;
	tap2 = key_of(&f.cfg, "tcg");
	CHECK(tap && strcmp(tap, base) != 0);
	CHECK(tap2 && strcmp(tap2, tap) == 0);
	/* A missing kernel is an error, not a key. */
	f.cfg.tap_fd = 0;
	unlink(f.kernel);
	runm_error_release(&err);
	CHECK(vm_template_describe(&f.cfg, "tcg", &desc, &key, &err) < 0);
	CHECK_EQ_INT(err->status, ENOENT);
	fixture_release(&f);
}

/* root/name/snapshot: true if made. */
static bool make_dir_with_file(const char *root, const char *name)
{
	cleanup_free char *d = xasprintf("%s/%s", root, name), *f = xasprintf("%s/snapshot", d);
	return mkdir(d, 0700) == 0 && write_file_atomic(f, "s", 1, 0600, NULL) == 0;
}

static bool exists_in(const char *root, const char *name)
{
	cleanup_free char *d = xasprintf("%s/%s", root, name);
	return access(d, F_OK) == 0;
}

TEST(template_prepare_sweeps_what_dead_processes_left)
{
	struct fixture f;
	struct vm vm = { .accel = "tcg" };
	cleanup_free char *root = NULL, *tmp_dead = NULL, *bad_dead = NULL, *tmp_live = NULL, *bad_live = NULL;
	pid_t dead = fork();

	if (dead == 0)
		_exit(0);
	CHECK(dead > 0 && waitpid(dead, NULL, 0) == dead);
	fixture_init(&f);
	root = xasprintf("%s/templates", f.dir);
	CHECK(mkdir(root, 0700) == 0);
	tmp_dead = xasprintf(".tmp-0123456789abcdef-%d", (int)dead);
	bad_dead = xasprintf("0123456789abcdef.bad-%d", (int)dead);
	tmp_live = xasprintf(".tmp-0123456789abcdef-%d", (int)getpid()); /* a save under way */
	bad_live = xasprintf("0123456789abcdef.bad-%d", (int)getpid());
	CHECK(make_dir_with_file(root, tmp_dead));
	CHECK(make_dir_with_file(root, bad_dead));
	CHECK(make_dir_with_file(root, tmp_live));
	CHECK(make_dir_with_file(root, bad_live));
	CHECK(make_dir_with_file(root, "0123456789abcdef"));      /* a template */
	CHECK(make_dir_with_file(root, ".tmp-0123456789abcdef-x")); /* not runm's name: left alone */
	setenv("RUNM_TEMPLATE_DIR", root, 1);
	vm_template_prepare(&vm, &f.cfg);
	unsetenv("RUNM_TEMPLATE_DIR");
	CHECK(!exists_in(root, tmp_dead));
	CHECK(!exists_in(root, bad_dead));
	CHECK(exists_in(root, tmp_live));
	CHECK(exists_in(root, bad_live));
	CHECK(exists_in(root, "0123456789abcdef"));
	CHECK(exists_in(root, ".tmp-0123456789abcdef-x"));
	CHECK(vm.tpl_wanted); /* no template for this VM's key: a cold boot that saves one */
	free(vm.tpl_dir);
	free(vm.tpl_desc);
	free(vm.restore_path);
	fixture_release(&f);
}
