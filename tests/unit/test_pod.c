/* Unit tests of pod grouping: the spec's reading of CRI's annotations and
 * namespace paths (src/engine/spec.c), spec_join_pod's rewrite, and the
 * agent's container table and cgroup figures (src/agent/ctr.c, stats.c,
 * compiled in here: the agent's sources are not in the host library). */
#include "../../src/agent/ctr.c"
#include "../../src/agent/stats.c"
#include "../../src/agent/sockproxy.c" /* ctr_remove closes a container's host sockets */
#include "engine/spec.h"

#include "harness.h"

#include <string.h>
#include <unistd.h>

#define CFG_HEAD "{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"},"

static int prepare(const char *id, const char *json, struct spec *s, runm_error_t *err)
{
	return spec_prepare(id, "/tmp/bundle", json, strlen(json), s, err);
}

TEST(single_container_has_no_pod)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("c1", CFG_HEAD "\"mounts\":[{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/tmp\","
			    "\"options\":[\"rbind\"]}]}",
		      &s, &err) == 0);
	CHECK(s.pod_sandbox == NULL);
	CHECK_EQ_INT(s.pod_ns, 0);
	CHECK_STR(s.id, "c1");
	/* each container of a VM binds its shares under a directory of its own */
	CHECK(s.n_shares == 1 && strcmp(s.shares[0].guest_path, SPEC_GUEST_SHARES "/c1/m0") == 0);
	spec_release(&s);
}

TEST(cri_sandbox_owns_its_vm)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("pod1", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":\"sandbox\",\"" SPEC_ANN_CRI_SANDBOX
				   "\":\"pod1\"}}",
		      &s, &err) == 0);
	CHECK(s.pod_sandbox == NULL);
	spec_release(&s);
}

TEST(cri_sandbox_sized_for_the_pod)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("pod1", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":\"sandbox\",\"" SPEC_ANN_CRI_POD_MEMORY
				   "\":\"536870912\",\"" SPEC_ANN_CRI_POD_CPU_QUOTA "\":\"150000\",\"" SPEC_ANN_CRI_POD_CPU_PERIOD
				   "\":\"100000\"}}",
		      &s, &err) == 0);
	CHECK_EQ_INT(s.mem_mib, 512 + SPEC_VM_OVERHEAD_MIB);
	CHECK_EQ_INT(s.vcpus, 2);
	spec_release(&s);
	/* garbage sizes are ignored, not trusted */
	CHECK(prepare("pod1", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":\"sandbox\",\"" SPEC_ANN_CRI_POD_MEMORY
				   "\":\"-5\",\"" SPEC_ANN_CRI_POD_CPU_QUOTA "\":\"1e9\",\"" SPEC_ANN_CRI_POD_CPU_PERIOD
				   "\":\"0\"}}",
		      &s, &err) == 0);
	CHECK_EQ_INT(s.mem_mib, 0);
	CHECK_EQ_INT(s.vcpus, 0);
	spec_release(&s);
}

TEST(cri_container_joins_with_shared_namespaces)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("web", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":\"container\",\"" SPEC_ANN_CRI_SANDBOX
				  "\":\"pod1\"},\"linux\":{\"namespaces\":[{\"type\":\"mount\"},"
				  "{\"type\":\"network\",\"path\":\"/var/run/netns/cni-1\"},"
				  "{\"type\":\"ipc\",\"path\":\"/proc/77/ns/ipc\"},{\"type\":\"uts\",\"path\":\"/proc/77/ns/uts\"},"
				  "{\"type\":\"pid\"}]}}",
		      &s, &err) == 0);
	CHECK_STR(s.pod_sandbox, "pod1");
	CHECK_EQ_INT(s.pod_ns, SPEC_NS_IPC | SPEC_NS_UTS);
	/* host paths never reach the guest */
	CHECK(strstr(s.guest_json, "/proc/77") == NULL && strstr(s.guest_json, "cni-1") == NULL);
	CHECK(spec_join_pod(&s, 0, &err) < 0);
	runm_error_release(&err);
	CHECK(spec_join_pod(&s, 42, &err) == 0);
	CHECK(strstr(s.guest_json, "\"\\/proc\\/42\\/ns\\/ipc\"") || strstr(s.guest_json, "\"/proc/42/ns/ipc\""));
	CHECK(strstr(s.guest_json, "42\\/ns\\/uts") || strstr(s.guest_json, "42/ns/uts"));
	/* its own pid namespace stays new */
	CHECK(strstr(s.guest_json, "42\\/ns\\/pid") == NULL && strstr(s.guest_json, "42/ns/pid") == NULL);
	spec_release(&s);
}

TEST(cri_container_needs_a_sandbox_id)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("web", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":\"container\"}}", &s, &err) < 0);
	CHECK(strstr(runm_error_msg(err), SPEC_ANN_CRI_SANDBOX) != NULL);
	runm_error_release(&err);
	CHECK(prepare("web", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":\"container\",\"" SPEC_ANN_CRI_SANDBOX
				  "\":\"../x\"}}",
		      &s, &err) < 0);
	runm_error_release(&err);
	CHECK(prepare("web", CFG_HEAD "\"annotations\":{\"" SPEC_ANN_CRI_TYPE "\":7}}", &s, &err) < 0);
}

TEST(limits_on_what_the_vm_lacks_are_dropped)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("c1", CFG_HEAD "\"linux\":{\"resources\":{\"blockIO\":{\"weight\":0},\"hugepageLimits\":[],"
			    "\"pids\":{\"limit\":10}}}}",
		      &s, &err) == 0);
	CHECK(strstr(s.guest_json, "blockIO") == NULL && strstr(s.guest_json, "hugepageLimits") == NULL);
	CHECK(strstr(s.guest_json, "\"pids\"") != NULL);
	spec_release(&s);
}

TEST(bad_ids_are_refused)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	CHECK(prepare("", CFG_HEAD "\"x\":1}", &s, &err) < 0);
	runm_error_release(&err);
	CHECK(prepare("a/b", CFG_HEAD "\"x\":1}", &s, &err) < 0);
	runm_error_release(&err);
	CHECK(prepare("..", CFG_HEAD "\"x\":1}", &s, &err) < 0);
}

TEST(agent_container_table)
{
	struct ctr *a, *b;
	CHECK(ctr_find("") == NULL);
	a = ctr_new("sandbox");
	b = ctr_new("web");
	CHECK_EQ_INT(ctr_count(), 2);
	/* "" is the VM's first container, for callers that know only one */
	CHECK(ctr_find("") == a);
	CHECK(ctr_find("web") == b);
	CHECK(ctr_find("nope") == NULL);
	CHECK_STR(b->bundle, CTR_BUNDLES "/web");
	ctr_remove(a);
	CHECK(ctr_find("") == b);
	ctr_remove(b);
	CHECK_EQ_INT(ctr_count(), 0);
}

TEST(cgroup_figures_parse)
{
	cleanup_free char *cg = stats_cgroup_of(getpid());
	CHECK(stats_parse_u64("123\n") == 123);
	CHECK(stats_parse_u64("max\n") == 0);
	CHECK(stats_parse_u64("12x") == 0);
	CHECK(stats_parse_u64("") == 0);
	CHECK(stats_parse_u64(NULL) == 0);
	/* cgroup v2 hosts (these) name our cgroup; either way no crash */
	CHECK(cg == NULL || cg[0] == '/');
	CHECK(stats_cgroup_of(-5) == NULL);
}

TEST(stats_fall_back_to_the_vm)
{
	Runm__Agent__V1__StatsResponse r = RUNM__AGENT__V1__STATS_RESPONSE__INIT;
	stats_collect(0, &r);
	CHECK(r.memory_limit_bytes > 0 && r.memory_usage_bytes <= r.memory_limit_bytes);
	CHECK_EQ_INT(r.pids, 0);
	stats_collect(getpid(), &r);
	CHECK(r.memory_limit_bytes > 0);
}
