/* Unit tests of src/vm/accel.c: the accelerator decision over fake hosts
 * (cpuinfo, /sys/module, /dev/kvm in a temporary tree), explicit choices,
 * and the verdicts remembered after a failed KVM boot. */
#include "vm/accel.h"
#include "common/util.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLAGS_PVM "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep hypervisor lahf_lm\n"
#define FLAGS_NESTED "flags\t\t: fpu vme de pse tsc msr pae vmx cx8 apic sep hypervisor lahf_lm\n"
#define FLAGS_METAL "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep svm lahf_lm\n"
/* "vmx" only as part of another word must not count. */
#define FLAGS_TRICKY "flags\t\t: fpu vmxx avmx svm_lock hypervisor\n"

/* A fake host: root/proc/cpuinfo with flags, root/sys/module/<module>,
 * root/dev/kvm as a regular file (opens read-write as root) or, with
 * kvm_dir, as a directory (open fails: the "no permission" case). */
static char *fake_host(const char *flags, const char *module, bool kvm, bool kvm_dir)
{
	char tmpl[] = "/tmp/runm-accel-XXXXXX";
	char *root = xstrdup(mkdtemp(tmpl));
	cleanup_free char *proc = xasprintf("%s/proc", root), *cpuinfo = xasprintf("%s/proc/cpuinfo", root);
	cleanup_free char *dev = xasprintf("%s/dev", root), *kvmp = xasprintf("%s/dev/kvm", root);
	cleanup_free char *text = xasprintf("processor\t: 0\nvendor_id\t: GenuineIntel\n%s\nprocessor\t: 1\n", flags);

	mkdir(proc, 0755);
	write_file_atomic(cpuinfo, text, strlen(text), 0644, NULL);
	if (module) {
		cleanup_free char *m = xasprintf("%s/sys/module/%s", root, module);
		mkdir_p(m, 0755, NULL);
	}
	mkdir(dev, 0755);
	if (kvm && kvm_dir)
		mkdir(kvmp, 0755);
	else if (kvm)
		write_file_atomic(kvmp, "", 0, 0666, NULL);
	return root;
}

static void drop(char *root)
{
	rm_rf(root, NULL);
	free(root);
}

TEST(accel_pvm_is_tcg_with_the_reason)
{
	char *root = fake_host(FLAGS_PVM, "kvm_pvm", true, false);
	struct accel_facts f;
	struct accel_decision d;
	cleanup_error runm_error_t err = NULL;

	accel_read_facts(root, &f);
	drop(root);
	CHECK(f.x86 && f.kvm_dev_exists && f.kvm_open_errno == 0 && !f.cpu_vmx_svm && f.hypervisor_flag);
	CHECK_STR(f.kvm_provider, "kvm_pvm");
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "tcg");
	CHECK(d.kvm_skipped && d.conclusive);
	CHECK(strstr(d.reason, "kvm_pvm") != NULL);
	/* Forcing kvm fails, naming the cause and the way out. */
	CHECK(accel_check("kvm", &f, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "provided by kvm_pvm") != NULL);
	CHECK(strstr(runm_error_msg(err), "use accel=tcg") != NULL);
	CHECK(accel_check("tcg", &f, &err) == 0);
}

TEST(accel_pvm_beside_a_vendor_module_is_still_pvm)
{
	char *root = fake_host(FLAGS_NESTED, "kvm_intel", true, false);
	cleanup_free char *m = xasprintf("%s/sys/module/kvm_pvm", root);
	struct accel_facts f;
	struct accel_decision d;
	mkdir_p(m, 0755, NULL);
	accel_read_facts(root, &f);
	drop(root);
	CHECK_STR(f.kvm_provider, "kvm_pvm");
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "tcg");
}

TEST(accel_nested_vmx_is_kvm_but_unproven)
{
	char *root = fake_host(FLAGS_NESTED, "kvm_intel", true, false);
	struct accel_facts f;
	struct accel_decision d;
	cleanup_error runm_error_t err = NULL;

	accel_read_facts(root, &f);
	drop(root);
	CHECK(f.cpu_vmx_svm && f.hypervisor_flag);
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "kvm");
	CHECK(!d.conclusive && !d.kvm_skipped);
	CHECK(strstr(d.reason, "nested") != NULL);
	CHECK(accel_check("kvm", &f, &err) == 0);
}

TEST(accel_bare_metal_svm_is_proven_kvm)
{
	char *root = fake_host(FLAGS_METAL, "kvm_amd", true, false);
	struct accel_facts f;
	struct accel_decision d;
	accel_read_facts(root, &f);
	drop(root);
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "kvm");
	CHECK(d.conclusive);
}

TEST(accel_no_kvm_is_tcg_without_a_skip)
{
	char *root = fake_host(FLAGS_METAL, NULL, false, false);
	struct accel_facts f;
	struct accel_decision d;
	cleanup_error runm_error_t err = NULL;

	accel_read_facts(root, &f);
	drop(root);
	CHECK(!f.kvm_dev_exists && f.kvm_provider[0] == '\0');
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "tcg");
	CHECK(!d.kvm_skipped); /* a host without KVM: nothing to warn about */
	CHECK(accel_check("kvm", &f, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "no /dev/kvm") != NULL);
}

TEST(accel_kvm_without_permission)
{
	char *root = fake_host(FLAGS_METAL, "kvm_amd", true, true);
	struct accel_facts f;
	struct accel_decision d;
	cleanup_error runm_error_t err = NULL;

	accel_read_facts(root, &f);
	drop(root);
	CHECK(f.kvm_dev_exists && f.kvm_open_errno != 0);
	/* The case a user meets (root opens anything: faked from here on). */
	f.kvm_open_errno = EACCES;
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "tcg");
	CHECK(d.kvm_skipped);
	CHECK(strstr(d.reason, "Permission denied") != NULL && strstr(d.reason, "group kvm") != NULL);
	CHECK(accel_check("kvm", &f, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "cannot be opened read-write") != NULL);
}

TEST(accel_flags_are_whole_words)
{
	char *root = fake_host(FLAGS_TRICKY, "kvm_intel", true, false);
	struct accel_facts f;
	struct accel_decision d;
	accel_read_facts(root, &f);
	drop(root);
	CHECK(!f.cpu_vmx_svm && f.hypervisor_flag);
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "tcg");
	CHECK(strstr(d.reason, "neither vmx nor svm") != NULL);
}

TEST(accel_macos_is_hvf)
{
	struct accel_facts f = { .macos = true };
	struct accel_decision d;
	cleanup_error runm_error_t err = NULL;
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "hvf");
	CHECK(accel_check("hvf", &f, &err) == 0);
	CHECK(accel_check("kvm", &f, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "Linux only") != NULL);
	f.macos = false;
	CHECK(accel_check("hvf", &f, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "macOS only") != NULL);
	CHECK(accel_check("xen", &f, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "unknown accelerator `xen`") != NULL);
}

TEST(accel_not_x86_trusts_no_flags)
{
	struct accel_facts f = { .kvm_dev_exists = true };
	struct accel_decision d;
	snprintf(f.kvm_provider, sizeof(f.kvm_provider), "kvm");
	accel_decide(&f, &d);
	CHECK_STR(d.accel, "kvm");
	CHECK(!d.conclusive); /* a failed boot may still fall back */
}

TEST(accel_verdicts_are_keyed)
{
	char tmpl[] = "/tmp/runm-verdict-XXXXXX";
	cleanup_free char *dir = xstrdup(mkdtemp(tmpl)), *sub = xasprintf("%s/state", dir);
	cleanup_free char *kernel = xasprintf("%s/vmlinuz", dir), *k1 = NULL, *k2 = NULL, *why = NULL;
	struct accel_facts f = { .x86 = true };
	cleanup_error runm_error_t err = NULL;

	snprintf(f.host, sizeof(f.host), "6.1.0 x86_64");
	snprintf(f.kvm_provider, sizeof(f.kvm_provider), "kvm_intel");
	write_file_atomic(kernel, "k1", 2, 0644, NULL);
	k1 = accel_verdict_key(kernel, "/usr/bin/true", &f);
	CHECK(accel_verdict_read(sub, k1, &why) == 0);
	CHECK(accel_verdict_write(sub, k1, "emulation failure", &err) == 0); /* creates the state dir */
	CHECK(accel_verdict_read(sub, k1, &why) == 1);
	CHECK_STR(why, "emulation failure");
	/* Another kernel (size changes), another host: no verdict. */
	write_file_atomic(kernel, "kernel2", 7, 0644, NULL);
	k2 = accel_verdict_key(kernel, "/usr/bin/true", &f);
	CHECK(strcmp(k1, k2) != 0);
	free(why);
	why = NULL;
	CHECK(accel_verdict_read(sub, k2, &why) == 0);
	CHECK(accel_verdict_write(sub, k2, "two\nlines", &err) < 0);
	rm_rf(dir, NULL);
}
