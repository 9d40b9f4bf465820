/* template.c - VM templates for a warm start (see vm.h, "templates").
 *
 * A template is a migration stream of a VM saved right after its agent said
 * hello, before anything was mounted in the guest, in
 * <root>/<key>/snapshot with the description it was made for in
 * <root>/<key>/desc. The key hashes the description: the VMM's command line
 * with what differs per VM left out (console log path, share path, published
 * ports: none of them is in the migration stream), plus the identity of the
 * VMM binary, kernel and initramfs (path, device, inode, size, mtime: an
 * upgrade or a rebuild changes one). The desc file is compared in full at
 * restore, so a hash collision is a cold boot, never a wrong guest.
 *
 * Written atomically: into a private <root>/.tmp-<key>-<pid> directory,
 * then rename(2) onto <root>/<key>, which fails if another VM won the race
 * (its template is as good as ours; ours is removed). A reader either sees
 * a complete template or none. */
#include "vm-backend.h"
#include "accel.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMPLATE_SNAPSHOT "snapshot"
#define TEMPLATE_DESC "desc"
/* A migration of a small guest takes a fraction of a second (38 MiB for
 * the trimmed kernel, 234 ms measured); on a loaded TCG host, much more. */
#define TEMPLATE_SAVE_TIMEOUT_MS 30000
/* Templates kept per root: each is 40-75 MiB, in memory when the root is a
 * tmpfs, and every VM size (a pod's, a memory limit) has its own. Beyond
 * this the least recently used go (a restore touches its dir's mtime). */
#define TEMPLATE_MAX_KEEP 8

char *vm_template_root(void)
{
	const char *env = getenv("RUNM_TEMPLATE_DIR");
	cleanup_free char *state = NULL;
	if (env && env[0] == '/')
		return xstrdup(env);
	/* The state root (/run/runm as root) is a tmpfs on most hosts: a
	 * restore reads the snapshot from memory, and a reboot, after which
	 * the host's QEMU or guest may have changed, starts afresh. */
	state = accel_state_dir();
	return xasprintf("%s/templates", state);
}

/* FNV-1a, 64 bits: a directory name, not a security boundary (the full
 * description is compared at restore). */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static int identity(const char *what, const char *path, char **out, runm_error_t *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return runm_error_make(err, errno, "template key: %s `%s`", what, path);
	*out = xasprintf("%s %s dev=%llu ino=%llu size=%lld mtime=%lld.%09ld\n", what, path,
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	return 0;
}

int vm_template_describe(const struct vm_config *cfg, const char *accel, char **desc, char **key, runm_error_t *err)
{
	const struct vm_backend *ops = &vm_qemu_backend;
	cleanup_free char *binary = NULL, *argv = NULL, *bin_id = NULL, *k_id = NULL, *i_id = NULL;

	if (ops->describe == NULL)
		return runm_error_make(err, ENOTSUP, "the %s backend has no templates", ops->name);
	if (ops->binary(cfg, &binary, err) < 0 || ops->describe(cfg, binary, accel, &argv, err) < 0)
		return -1;
	if (identity("vmm", binary, &bin_id, err) < 0 || identity("kernel", cfg->kernel, &k_id, err) < 0 ||
	    identity("initrd", cfg->initrd, &i_id, err) < 0)
		return -1;
	*desc = xasprintf("runm template 1\n%s%s%s%s", bin_id, k_id, i_id, argv);
	*key = xasprintf("%016llx", (unsigned long long)fnv1a(*desc));
	return 0;
}

/* The pid in a temp name of save (.tmp-<key>-<pid>) or drop (<key>.bad-<pid>),
 * or 0 if name is neither. */
static pid_t temp_writer(const char *name)
{
	const char *p = NULL;
	char *end;
	long pid;

	if (strncmp(name, ".tmp-", 5) == 0 && strlen(name) > 5 + 16 + 1 && name[5 + 16] == '-')
		p = name + 5 + 16 + 1;
	else if (strlen(name) > 16 + 5 && strncmp(name + 16, ".bad-", 5) == 0)
		p = name + 16 + 5;
	if (p == NULL || *p < '1' || *p > '9')
		return 0;
	errno = 0;
	pid = strtol(p, &end, 10);
	return *end == '\0' && errno == 0 && pid > 0 && pid <= INT32_MAX ? (pid_t)pid : 0;
}

/* Remove what a save or a drop left when its process died (a crashed shim,
 * a host that went down: the root survives a reboot unless it is a tmpfs):
 * nothing else ever would, and each is a whole snapshot. One of a live
 * process is being written or removed now. */
static void sweep_dead(const char *root)
{
	DIR *d = opendir(root);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		pid_t pid = temp_writer(e->d_name);
		cleanup_free char *path = NULL;
		cleanup_error runm_error_t err = NULL;
		if (pid == 0 || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		path = xasprintf("%s/%s", root, e->d_name);
		log_info("template %s: left by dead process %d, removed", path, (int)pid);
		if (rm_rf(path, &err) < 0)
			log_warn("%s", runm_error_msg(err));
	}
	closedir(d);
}

void vm_template_prepare(struct vm *vm, const struct vm_config *cfg)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *root = NULL, *key = NULL, *desc = NULL, *snap = NULL, *desc_path = NULL, *have = NULL;

	if (!cfg->warm)
		return;
	if (vm_template_describe(cfg, vm->accel, &desc, &key, &err) < 0) {
		log_debug("no warm start: %s", runm_error_msg(err));
		return;
	}
	root = vm_template_root();
	sweep_dead(root);
	vm->tpl_dir = xasprintf("%s/%s", root, key);
	vm->tpl_desc = steal_ptr(&desc);
	snap = xasprintf("%s/" TEMPLATE_SNAPSHOT, vm->tpl_dir);
	desc_path = xasprintf("%s/" TEMPLATE_DESC, vm->tpl_dir);
	if (read_file_at(AT_FDCWD, desc_path, 1 << 16, &have, NULL, NULL) == 0 && access(snap, R_OK) == 0) {
		if (strcmp(have, vm->tpl_desc) == 0) {
			/* Recently used: kept by evict_old. */
			utimensat(AT_FDCWD, vm->tpl_dir, NULL, 0);
			vm->restore_path = steal_ptr(&snap);
			return;
		}
		log_warn("template %s was made for another VM (hash collision): cold boot", vm->tpl_dir);
		free(vm->tpl_dir);
		vm->tpl_dir = NULL;
		return;
	}
	vm->tpl_wanted = true;
}

bool vm_restored(const struct vm *vm)
{
	return vm->restore_path != NULL;
}

bool vm_template_wanted(const struct vm *vm)
{
	return vm->tpl_wanted && vm->tpl_dir != NULL;
}

const char *vm_template_dir(const struct vm *vm)
{
	return vm->tpl_dir;
}

/* Keep the TEMPLATE_MAX_KEEP most recently used templates under root. */
static void evict_old(const char *root)
{
	struct {
		char name[17]; /* a key: 16 hex digits */
		struct timespec mtime;
	} t[64];
	size_t n = 0;
	DIR *d = opendir(root);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL && n < ARRAY_SIZE(t)) {
		struct stat st;
		/* Only complete templates: <key> (16 hex digits), not .tmp-* or *.bad-*. */
		if (strlen(e->d_name) != 16 || strspn(e->d_name, "0123456789abcdef") != 16)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		memcpy(t[n].name, e->d_name, sizeof(t[n].name)); /* its NUL included: the length was checked */
		t[n++].mtime = st.st_mtim;
	}
	closedir(d);
	while (n > TEMPLATE_MAX_KEEP) {
		size_t oldest = 0;
		cleanup_free char *path = NULL;
		for (size_t i = 1; i < n; i++)
			if (t[i].mtime.tv_sec < t[oldest].mtime.tv_sec ||
			    (t[i].mtime.tv_sec == t[oldest].mtime.tv_sec && t[i].mtime.tv_nsec < t[oldest].mtime.tv_nsec))
				oldest = i;
		path = xasprintf("%s/%s", root, t[oldest].name);
		log_info("template %s: least recently used of more than %d, removed", path, TEMPLATE_MAX_KEEP);
		rm_rf(path, NULL);
		t[oldest] = t[--n];
	}
}

int vm_template_save(struct vm *vm, runm_error_t *err)
{
	cleanup_free char *root = NULL, *tmp = NULL, *snap = NULL, *desc = NULL;
	cleanup_error runm_error_t rmerr = NULL;
	struct stat st;
	int r;

	if (!vm_template_wanted(vm))
		return runm_error_make(err, EINVAL, "no template wanted for this VM");
	if (vm->ops->save == NULL)
		return runm_error_make(err, ENOTSUP, "the %s backend cannot save a template", vm->ops->name);
	vm->tpl_wanted = false; /* once per VM, whatever happens */
	root = xstrdup(vm->tpl_dir);
	*strrchr(root, '/') = '\0'; /* tpl_dir is <root>/<key> */
	tmp = xasprintf("%s/.tmp-%s-%d", root, strrchr(vm->tpl_dir, '/') + 1, (int)getpid());
	snap = xasprintf("%s/" TEMPLATE_SNAPSHOT, tmp);
	desc = xasprintf("%s/" TEMPLATE_DESC, tmp);
	if (mkdir_p(root, 0700, err) < 0)
		return runm_error_wrap(err, "template");
	/* A leftover of a crashed save by a process with our pid. */
	rm_rf(tmp, NULL);
	if (mkdir(tmp, 0700) < 0)
		return runm_error_make(err, errno, "template: mkdir `%s`", tmp);
	r = vm->ops->save(vm, snap, now_mono_ns() + TEMPLATE_SAVE_TIMEOUT_MS * 1000000ull, err);
	if (r == 0 && (stat(snap, &st) < 0 || st.st_size == 0))
		r = runm_error_make(err, EIO, "template: the VMM wrote no snapshot");
	if (r == 0)
		r = write_file_atomic(desc, vm->tpl_desc, strlen(vm->tpl_desc), 0600, err);
	if (r == 0 && rename(tmp, vm->tpl_dir) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			r = runm_error_make(err, errno, "template: rename to `%s`", vm->tpl_dir);
		/* else another VM saved one first: as good as ours. */
	}
	if (rm_rf(tmp, &rmerr) < 0)
		log_warn("%s", runm_error_msg(rmerr));
	if (r == 0)
		evict_old(root);
	return r;
}

void vm_template_drop(struct vm *vm)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *gone = NULL;

	if (vm->tpl_dir == NULL)
		return;
	/* Renamed away first: a VM starting now sees it whole or not at all
	 * (one already reading it keeps its open file). */
	gone = xasprintf("%s.bad-%d", vm->tpl_dir, (int)getpid());
	if (rename(vm->tpl_dir, gone) < 0) {
		if (errno != ENOENT)
			log_warn("remove template %s: %s", vm->tpl_dir, strerror(errno));
		return;
	}
	if (rm_rf(gone, &err) < 0)
		log_warn("%s", runm_error_msg(err));
}
