/* Unit tests of src/engine/config.c: the runm config file. */
#include "engine/config.h"
#include "harness.h"

#include <string.h>

static int parse(const char *text, struct runm_config *c, runm_error_t *err)
{
	return config_parse(text, strlen(text), "t.toml", c, err);
}

TEST(config_full)
{
	struct runm_config c;
	cleanup_error runm_error_t err = NULL;
	CHECK(parse("# runm\n[runm]\nkernel = \"/k/vmlinuz\"  # the guest\ninitrd=\"/k/initrd.img\"\n"
		    "default_memory_mib = 512\r\ndefault_vcpus = 2\n\n",
		    &c, &err) == 0);
	CHECK_STR(c.kernel, "/k/vmlinuz");
	CHECK_STR(c.initrd, "/k/initrd.img");
	CHECK_EQ_INT(c.default_mem_mib, 512);
	CHECK_EQ_INT(c.default_vcpus, 2);
	config_release(&c);
}

TEST(config_errors_name_line_and_key)
{
	struct runm_config c;
	cleanup_error runm_error_t err = NULL;
	CHECK(parse("kernel = \"/k\"\nmemory = 3\n", &c, &err) < 0);
	CHECK_STR(runm_error_msg(err), "t.toml:2: unknown key `memory`");
	CHECK(parse("default_vcpus = 0\n", &c, &err) < 0);
	CHECK_STR(runm_error_msg(err), "t.toml:1: default_vcpus: expected 1..256");
	CHECK(parse("kernel = relative\n", &c, &err) < 0);
	CHECK_STR(runm_error_msg(err), "t.toml:1: kernel: expected an absolute path in quotes");
	CHECK(parse("kernel = \"/k\"\n", &c, &err) < 0);
	CHECK_STR(runm_error_msg(err), "t.toml: kernel and initrd go together: give both or neither");
	CHECK(parse("just words\n", &c, &err) < 0);
	CHECK(c.kernel == NULL); /* nothing half-filled is left on failure */
}

TEST(config_missing_file)
{
	struct runm_config c;
	cleanup_error runm_error_t err = NULL;
	CHECK(config_load("/nonexistent/runm.toml", true, &c, &err) == 0);
	CHECK(c.kernel == NULL && c.default_mem_mib == 0);
	CHECK(config_load("/nonexistent/runm.toml", false, &c, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "/nonexistent/runm.toml") != NULL);
}

TEST(config_accel)
{
	struct runm_config c;
	cleanup_error runm_error_t err = NULL;
	CHECK(parse("accel = \"tcg\"\n", &c, &err) == 0);
	CHECK_STR(c.accel, "tcg");
	config_release(&c);
	CHECK(parse("accel = \"auto\"\n", &c, &err) == 0);
	CHECK(c.accel == NULL); /* auto is the same as not saying */
	CHECK(parse("accel = \"kvm\"\naccel = \"hvf\"\n", &c, &err) == 0);
	CHECK_STR(c.accel, "hvf");
	config_release(&c);
	CHECK(parse("accel = kvm\n", &c, &err) < 0);
	CHECK_STR(runm_error_msg(err), "t.toml:1: accel: expected \"auto\", \"kvm\", \"tcg\" or \"hvf\"");
	CHECK(parse("accel = \"xen\"\n", &c, &err) < 0);
	CHECK(c.accel == NULL);
}

TEST(config_warm_start)
{
	struct runm_config c;
	cleanup_error runm_error_t err = NULL;
	CHECK(parse("accel = \"tcg\"\n", &c, &err) == 0);
	CHECK_EQ_INT(c.warm_start, CONFIG_UNSET); /* the built-in default decides */
	config_release(&c);
	CHECK(parse("warm_start = false\n", &c, &err) == 0);
	CHECK_EQ_INT(c.warm_start, CONFIG_OFF);
	CHECK(parse("warm_start = false\nwarm_start = true # the last one wins\n", &c, &err) == 0);
	CHECK_EQ_INT(c.warm_start, CONFIG_ON);
	CHECK(parse("warm_start = yes\n", &c, &err) < 0);
	CHECK_STR(runm_error_msg(err), "t.toml:1: warm_start: expected true or false");
	CHECK_EQ_INT(c.warm_start, CONFIG_UNSET);
}
