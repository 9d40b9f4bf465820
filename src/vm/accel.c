/* accel.c - see accel.h. */
#include "accel.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* cpuinfo of a large host is ~1 MB; the first `flags` line is near the top. */
#define CPUINFO_MAX (4u << 20)
#define VERDICT_MAX 4096

static char *under(const char *root, const char *path)
{
	return xasprintf("%s%s", root ? root : "", path);
}

static bool exists(const char *root, const char *path)
{
	cleanup_free char *p = under(root, path);
	return access(p, F_OK) == 0;
}

/* Whether the space-separated word list [s, end) holds word. */
static bool has_word(const char *s, const char *end, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = s; p + n <= end; p++)
		if ((p == s || p[-1] == ' ' || p[-1] == '\t') && memcmp(p, word, n) == 0 &&
		    (p + n == end || p[n] == ' ' || p[n] == '\t' || p[n] == '\n'))
			return true;
	return false;
}

static void read_cpu_flags(const char *root, struct accel_facts *f)
{
	cleanup_free char *path = under(root, "/proc/cpuinfo"), *text = NULL;
	size_t len;
	const char *line, *end;

	if (read_file_at(AT_FDCWD, path, CPUINFO_MAX, &text, &len, NULL) < 0)
		return;
	/* Every CPU repeats the line; the first one is enough. */
	for (line = text; line && *line; line = end && *end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		if (strncmp(line, "flags", 5) == 0 && (line[5] == ' ' || line[5] == '\t' || line[5] == ':')) {
			const char *colon = memchr(line, ':', (size_t)(end - line));
			if (colon == NULL)
				continue;
			f->cpu_vmx_svm = has_word(colon + 1, end, "vmx") || has_word(colon + 1, end, "svm");
			f->hypervisor_flag = has_word(colon + 1, end, "hypervisor");
			return;
		}
	}
}

void accel_read_facts(const char *root, struct accel_facts *f)
{
	/* PVM first: it can sit beside a vendor module and is then the one
	 * behind /dev/kvm (it registers as the x86 KVM vendor). */
	static const char *const providers[] = { "kvm_pvm", "kvm_intel", "kvm_amd", "kvm" };
	struct utsname u;

	memset(f, 0, sizeof(*f));
	if (root && root[0] == '\0')
		root = NULL;
#ifdef __APPLE__
	f->macos = true;
#endif
#if defined(__x86_64__) || defined(__i386__)
	f->x86 = true;
#endif
	if (uname(&u) == 0)
		snprintf(f->host, sizeof(f->host), "%s %s", u.release, u.machine);
	if (f->macos)
		return;
	read_cpu_flags(root, f);
	for (size_t i = 0; i < ARRAY_SIZE(providers); i++) {
		cleanup_free char *mod = xasprintf("/sys/module/%s", providers[i]);
		if (exists(root, mod)) {
			snprintf(f->kvm_provider, sizeof(f->kvm_provider), "%s", providers[i]);
			break;
		}
	}
	{
		cleanup_free char *dev = under(root, "/dev/kvm");
		int fd;
		f->kvm_dev_exists = access(dev, F_OK) == 0;
		if (!f->kvm_dev_exists)
			return;
		/* Openable read-write is what QEMU needs (existence alone is not). */
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			f->kvm_open_errno = errno;
		else
			close(fd);
	}
}

/* Why KVM cannot run the guest on these facts (Linux), or NULL if it may.
 * Shared by the automatic choice and the explicit check, so both say the same. */
static const char *kvm_blocker(const struct accel_facts *f, char *buf, size_t len)
{
	if (!f->kvm_dev_exists) {
		snprintf(buf, len, "there is no /dev/kvm (no KVM module loaded, or no hardware virtualization)");
		return buf;
	}
	/* PVM (kvm_pvm, for nested clouds) runs only PVM-enabled guest kernels:
	 * a standard one crawls and dies at its first cmpxchg16b with "KVM
	 * internal error ... emulation failure" (docs: pitfalls.md). */
	if (strcmp(f->kvm_provider, "kvm_pvm") == 0) {
		snprintf(buf, len,
			 "KVM here is provided by kvm_pvm (a software PVM hypervisor), which cannot run a standard "
			 "guest kernel");
		return buf;
	}
	if (f->kvm_open_errno != 0) {
		snprintf(buf, len, "/dev/kvm cannot be opened read-write (%s): add this user to group kvm",
			 strerror(f->kvm_open_errno));
		return buf;
	}
	if (f->x86 && !f->cpu_vmx_svm) {
		snprintf(buf, len,
			 "the CPU reports neither vmx nor svm, so /dev/kvm (%s) is not hardware virtualization and "
			 "cannot run a standard guest kernel",
			 f->kvm_provider[0] ? f->kvm_provider : "unknown module");
		return buf;
	}
	return NULL;
}

void accel_decide(const struct accel_facts *f, struct accel_decision *out)
{
	char why[256];

	memset(out, 0, sizeof(*out));
	if (f->macos) {
		out->accel = "hvf";
		out->conclusive = true;
		snprintf(out->reason, sizeof(out->reason), "macOS: Hypervisor.framework (hvf)");
		return;
	}
	if (kvm_blocker(f, why, sizeof(why)) != NULL) {
		out->accel = "tcg";
		out->conclusive = true;
		/* No /dev/kvm at all is just a host without KVM, not a skip. */
		out->kvm_skipped = f->kvm_dev_exists;
		snprintf(out->reason, sizeof(out->reason), "%s", why);
		return;
	}
	out->accel = "kvm";
	/* vmx/svm and a vendor module on bare metal is the well-trodden case.
	 * Inside a VM (nested) or on an unknown provider or architecture, the
	 * facts do not prove a boot: the first failure falls back to TCG. */
	out->conclusive = f->x86 && !f->hypervisor_flag &&
			  (strcmp(f->kvm_provider, "kvm_intel") == 0 || strcmp(f->kvm_provider, "kvm_amd") == 0);
	snprintf(out->reason, sizeof(out->reason), "/dev/kvm from %s%s%s",
		 f->kvm_provider[0] ? f->kvm_provider : "an unknown module",
		 f->x86 ? (f->hypervisor_flag ? ", CPU has vmx/svm, nested inside a VM" : ", CPU has vmx/svm") : "",
		 out->conclusive ? "" : " (not proven: a failed boot falls back to TCG once)");
}

int accel_check(const char *accel, const struct accel_facts *f, runm_error_t *err)
{
	char why[256];

	if (strcmp(accel, "tcg") == 0)
		return 0;
	if (strcmp(accel, "hvf") == 0) {
		if (f->macos)
			return 0;
		return runm_error_make(err, 0, "accel=hvf is macOS only; use accel=kvm or accel=tcg");
	}
	if (strcmp(accel, "kvm") == 0) {
		if (f->macos)
			return runm_error_make(err, 0, "accel=kvm is Linux only; use accel=hvf");
		if (kvm_blocker(f, why, sizeof(why)) != NULL)
			return runm_error_make(err, 0, "accel=kvm: %s; use accel=tcg", why);
		return 0;
	}
	return runm_error_make(err, EINVAL, "unknown accelerator `%s` (auto, kvm, hvf or tcg)", accel);
}

/* ---- verdicts ---- */

static void file_id(const char *path, char *buf, size_t len)
{
	struct stat st;
	if (path == NULL || stat(path, &st) < 0)
		snprintf(buf, len, "%s:missing", path ? path : "-");
	else
		snprintf(buf, len, "%s:%lld:%lld.%09ld", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec);
}

char *accel_verdict_key(const char *kernel, const char *vmm_binary, const struct accel_facts *f)
{
	char k[4200], v[4200];
	file_id(kernel, k, sizeof(k));
	file_id(vmm_binary, v, sizeof(v));
	return xasprintf("kernel=%s vmm=%s host=%s kvm=%s", k, v, f->host, f->kvm_provider[0] ? f->kvm_provider : "-");
}

static char *verdict_path(const char *dir, const char *key)
{
	/* FNV-1a: a file name per key; the key itself is inside, compared in full. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return xasprintf("%s/accel-%016" PRIx64, dir, h);
}

int accel_verdict_read(const char *dir, const char *key, char **why)
{
	cleanup_free char *path = verdict_path(dir, key), *text = NULL;
	size_t len, klen = strlen(key);
	char *nl;

	if (read_file_at(AT_FDCWD, path, VERDICT_MAX, &text, &len, NULL) < 0)
		return 0;
	/* Line 1 the key, line 2 the why. */
	if (len <= klen + 1 || memcmp(text, key, klen) != 0 || text[klen] != '\n')
		return 0;
	nl = strchr(text + klen + 1, '\n');
	if (nl)
		*nl = '\0';
	*why = xstrdup(text + klen + 1);
	return 1;
}

int accel_verdict_write(const char *dir, const char *key, const char *why, runm_error_t *err)
{
	cleanup_free char *path = verdict_path(dir, key), *text = NULL;

	if (strchr(key, '\n') || strchr(why, '\n'))
		return runm_error_make(err, EINVAL, "accel verdict: a newline in the key or the reason");
	if (mkdir_p(dir, 0700, err) < 0)
		return runm_error_wrap(err, "accel verdict");
	text = xasprintf("%s\n%s\n", key, why);
	return write_file_atomic(path, text, strlen(text), 0600, err);
}

char *accel_state_dir(void)
{
	const char *env = getenv("RUNM_STATE_ROOT"), *xdg = getenv("XDG_RUNTIME_DIR");
	if (env && env[0] == '/')
		return xstrdup(env);
	if (geteuid() == 0 || xdg == NULL || xdg[0] != '/')
		return xstrdup("/run/runm");
	return xasprintf("%s/runm", xdg);
}
