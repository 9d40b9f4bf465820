/* check.c - `runm check`: whether runm can run containers on this host, one
 * fact a line (as `docker info` / `kata-runtime check` do): the accelerator
 * and why, the VMM, the guest, the shim, the network backends, and for each
 * missing piece what brings it. Exit 0 when runm can run containers here.
 * `runm check --accel` prints the accelerator's name alone (CI, benchmarks). */
#include "cli/cli.h"

#include "common/util.h"
#include "engine/config.h"
#include "engine/guest.h"
#include "engine/sandbox.h"
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The first line of `binary args` (its stdout), malloc'd; "" when it fails.
 * The binary is one we found ourselves (PATH or RUNM_QEMU), quoted. */
static char *first_line(const char *binary, const char *args, const char *want)
{
	cleanup_free char *cmd = xasprintf("'%s' %s 2>/dev/null </dev/null", binary, args);
	char line[512];
	char *found = NULL;
	FILE *f;

	if (strchr(binary, '\'') || (f = popen(cmd, "r")) == NULL)
		return xstrdup("");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (found == NULL && (want == NULL || strcmp(line, want) == 0))
			found = xstrdup(line);
	}
	pclose(f);
	return found ? found : xstrdup("");
}

static char *on_path(const char *name)
{
	const char *path = getenv("PATH");
	cleanup_free char *dirs = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, name);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* The release the guest build recorded beside the kernel (guest/build.sh). */
static char *kernel_release(const char *kernel)
{
	cleanup_free char *dir = xstrdup(kernel), *path = NULL, *text = NULL;
	char *slash = strrchr(dir, '/');
	size_t len;
	if (slash)
		*slash = '\0';
	path = xasprintf("%s/kernel-release", dir);
	if (read_file_at(AT_FDCWD, path, 256, &text, &len, NULL) < 0)
		return xstrdup("release unknown");
	text[strcspn(text, "\n")] = '\0';
	return xstrdup(text);
}

static int check_accel(bool name_only)
{
	cleanup_error runm_error_t err = NULL;
	struct runm_config rc __attribute__((cleanup(config_release))) = { 0 };
	cleanup_free char *why = NULL, *kernel = NULL, *initrd = NULL;
	const char *env = getenv("RUNM_ACCEL"), *explicit = NULL, *source = NULL;

	if (env && *env && strcmp(env, "auto") != 0) {
		explicit = env;
		source = "RUNM_ACCEL";
	} else if (!(env && *env) && config_load(RUNM_CONFIG_DEFAULT, true, &rc, &err) < 0) {
		printf("missing: a valid runm config: %s\n", runm_error_msg(err));
		return 1;
	} else if (rc.accel) {
		explicit = rc.accel;
		source = RUNM_CONFIG_DEFAULT;
	}
	if (explicit) {
		if (vm_check_accel(explicit, &err) < 0) {
			printf(name_only ? "none: %s (from %s)\n" : "missing: accel: %s (from %s)\n", runm_error_msg(err),
			       source);
			return 1;
		}
		printf(name_only ? "%s\n" : "accel: %s (explicit, from %s)\n", explicit, source);
		return 0;
	}
	/* The verdict depends on the guest kernel: ask about the one runm would boot. */
	if (guest_find(&kernel, &initrd, NULL) < 0)
		kernel = NULL;
	const char *a = vm_auto_accel(kernel, &why);
	if (name_only)
		printf("%s\n", a);
	else
		printf("accel: %s (automatic: %s)\n", a, why);
	return 0;
}

int cmd_check(const struct cli *cli, int argc, char **argv)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *qemu = NULL, *version = NULL, *kernel = NULL, *initrd = NULL, *shim = NULL, *passt = NULL;
	int bad = 0;
	(void)cli;

	if (argc == 2 && strcmp(argv[1], "--accel") == 0)
		return check_accel(true);
	if (argc != 1) {
		fprintf(stderr, "usage: runm check [--accel]\n");
		return 2;
	}
	bad |= check_accel(false);

	if (vm_find_vmm(&qemu, &err) < 0) {
		printf("missing: the VMM: %s\n", runm_error_msg(err));
		bad = 1;
	} else {
		version = first_line(qemu, "--version", NULL);
		printf("qemu: %s (%s)\n", qemu, version[0] ? version : "version unknown: it does not run?");
		if (version[0] == '\0')
			bad = 1;
	}

	if (guest_find(&kernel, &initrd, &err) < 0) {
		printf("missing: the guest: %s\n", runm_error_msg(err));
		bad = 1;
	} else {
		cleanup_free char *rel = kernel_release(kernel);
		struct stat st;
		char when[32] = "?";
		printf("guest kernel: %s (%s)\n", kernel, rel);
		if (stat(initrd, &st) == 0)
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime(&st.st_mtime));
		printf("guest initrd: %s (%.1f MiB, built %s)\n", initrd, (double)st.st_size / (1 << 20), when);
	}

	shim = on_path("containerd-shim-runm-v1");
	if (shim)
		printf("containerd shim: %s\n", shim);
	else
		printf("missing: containerd-shim-runm-v1 on PATH (for ctr/containerd; `runm run` works without it): "
		       "make install\n");

	if (qemu) {
		/* QEMU lists its netdev backends; "user" is slirp, built in or not. */
		cleanup_free char *user = first_line(qemu, "-netdev help", "user");
		if (user[0]) {
			printf("network: slirp (QEMU -netdev user): yes\n");
		} else {
			printf("missing: network: this QEMU has no slirp (-netdev user): apt-get install qemu-system-x86 "
			       "(Debian's is built with it)\n");
			bad = 1;
		}
	}
	passt = on_path("passt");
	if (passt)
		printf("network: passt: %s\n", passt);
	else
		printf("network: passt: no (optional; apt-get install passt)\n");

	printf("%s\n", bad ? "runm check: runm cannot run containers here (see `missing:` above)"
			   : "runm check: runm can run containers here");
	return bad ? 1 : 0;
}
