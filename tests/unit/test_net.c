/* Unit tests of user-mode networking's host side: Docker's -p syntax with
 * ranges and random host ports (src/engine/spec.c), passt's command
 * line (src/vm/net.c), the backend's choice and the ports check
 * (src/vm/ports.c), the config key. */
#include "common/util.h"
#include "engine/config.h"
#include "engine/spec.h"
#include "vm/net.h"
#include "vm/ports.h"

#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void spec_init(struct spec *s)
{
	memset(s, 0, sizeof(*s));
	s->network = true;
}

static bool has_arg_pair(char **argv, const char *a, const char *b)
{
	for (size_t i = 0; argv[i] && argv[i + 1]; i++)
		if (strcmp(argv[i], a) == 0 && strcmp(argv[i + 1], b) == 0)
			return true;
	return false;
}

static bool has_arg(char **argv, const char *a)
{
	for (size_t i = 0; argv[i]; i++)
		if (strcmp(argv[i], a) == 0)
			return true;
	return false;
}

TEST(ports_docker_syntax)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	char *str;

	spec_init(&s);
	CHECK(spec_add_ports(&s, "8080:80, 127.0.0.1:53:53/udp,8000-8002:9000-9002,[::1]:8443:443,80,127.0.0.1::81",
			     "--publish", &err) == 0);
	CHECK_EQ_INT(s.n_ports, 6);
	CHECK(s.ports[0].host_ip == NULL && s.ports[0].host_port == 8080 && s.ports[0].container_port == 80 &&
	      s.ports[0].count == 1 && !s.ports[0].udp);
	CHECK_STR(s.ports[1].host_ip, "127.0.0.1");
	CHECK(s.ports[1].udp && s.ports[1].host_port == 53);
	CHECK(s.ports[2].host_port == 8000 && s.ports[2].container_port == 9000 && s.ports[2].count == 3);
	CHECK_STR(s.ports[3].host_ip, "::1");
	CHECK(s.ports[3].host_port == 8443 && s.ports[3].container_port == 443);
	/* no host port: any free one, chosen later */
	CHECK(s.ports[4].host_port == 0 && s.ports[4].container_port == 80 && s.ports[4].host_ip == NULL);
	CHECK(s.ports[5].host_port == 0 && s.ports[5].container_port == 81);
	CHECK_STR(s.ports[5].host_ip, "127.0.0.1");
	str = spec_port_string(&s.ports[2]);
	CHECK_STR(str, "0.0.0.0:8000-8002->9000-9002/tcp");
	free(str);
	str = spec_port_string(&s.ports[3]);
	CHECK_STR(str, "[::1]:8443->443/tcp");
	free(str);
	CHECK(spec_pick_ports(&s, &err) == 0);
	CHECK(s.ports[4].host_port != 0 && s.ports[5].host_port != 0);
	CHECK(s.ports[0].host_port == 8080); /* given ones are kept */
	spec_release(&s);
}

TEST(ports_bad_input_names_the_entry)
{
	static const char *const bad[] = { "99999:80",	  "0:80",	"80-79:80-79", "8000-8002:80-81",
					   "80-81",	  "a:b",	"[::1:80:80",  "[::1]80",
					   "1.2.3:80:80", "80:80/sctp", "8000-:80",
					   "65535-65535:65535-65536", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cleanup_error runm_error_t err = NULL;
		struct spec s;
		spec_init(&s);
		if (*bad[i] == '\0') { /* an empty list publishes nothing */
			CHECK(spec_add_ports(&s, bad[i], "--publish", &err) == 0 && s.n_ports == 0);
			continue;
		}
		if (spec_add_ports(&s, bad[i], "--publish", &err) == 0) {
			fprintf(stderr, "  accepted `%s`\n", bad[i]);
			CHECK(0);
		}
		CHECK(strstr(runm_error_msg(err), "--publish") != NULL);
		spec_release(&s);
	}
}

TEST(host_loopback_annotation)
{
	cleanup_error runm_error_t err = NULL;
	struct spec s;
	const char *on = "{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"},\"annotations\":{\"" SPEC_ANN_HOST_LOOPBACK
			 "\":\"true\"}}";
	const char *bad = "{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"},\"annotations\":{\"" SPEC_ANN_HOST_LOOPBACK
			  "\":\"1\"}}";
	const char *off = "{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":\"rootfs\"}}";

	CHECK(spec_prepare("c1", "/tmp/b", on, strlen(on), &s, &err) == 0);
	CHECK(s.host_loopback);
	spec_release(&s);
	CHECK(spec_prepare("c1", "/tmp/b", off, strlen(off), &s, &err) == 0);
	CHECK(!s.host_loopback);
	spec_release(&s);
	CHECK(spec_prepare("c1", "/tmp/b", bad, strlen(bad), &s, &err) < 0);
	CHECK(strstr(runm_error_msg(err), SPEC_ANN_HOST_LOOPBACK) != NULL);
}

TEST(passt_command_line)
{
	struct vm_port ports[] = { { .host_ip = "127.0.0.1", .host_port = 8080, .guest_port = 80 } };
	struct vm_config cfg = { .network = true, .ports = ports, .n_ports = 1 };
	char **argv;

	argv = vm_passt_argv(&cfg, "/usr/bin/passt", "/run/x/passt.log", 3);
	CHECK_STR(argv[0], "/usr/bin/passt");
	CHECK(has_arg_pair(argv, "--fd", "3") && has_arg(argv, "--foreground"));
	CHECK(has_arg_pair(argv, "--address", VM_NET_GUEST_ADDR) && has_arg_pair(argv, "--gateway", VM_NET_GATEWAY));
	CHECK(has_arg_pair(argv, "--dns-forward", VM_NET_DNS));
	/* published ports come in through slirp, never passt (qemu.c) */
	CHECK(!has_arg(argv, "--tcp-ports") && !has_arg(argv, "-t"));
	/* isolated: passt runs as the user the host's firewall rule names */
	CHECK(has_arg(argv, "--runas"));
	strv_free(argv);
	cfg.host_loopback = true;
	argv = vm_passt_argv(&cfg, "/usr/bin/passt", "/run/x/passt.log", 3);
	CHECK(!has_arg(argv, "--runas"));
	strv_free(argv);
}

TEST(backend_choice)
{
	struct vm_config cfg = { .network = true };
	cleanup_error runm_error_t err = NULL;
	const char *b = NULL;

	unsetenv("RUNM_NET_BACKEND");
	cfg.net_backend = "slirp";
	CHECK(vm_choose_net(&cfg, &b, &err) == 0 && strcmp(b, VM_NET_SLIRP) == 0);
	cfg.net_backend = "vde";
	CHECK(vm_choose_net(&cfg, &b, &err) < 0 && strstr(runm_error_msg(err), "vde") != NULL);
	runm_error_release(&err);
	/* the environment wins over the config */
	setenv("RUNM_NET_BACKEND", "slirp", 1);
	CHECK(vm_choose_net(&cfg, &b, &err) == 0 && strcmp(b, VM_NET_SLIRP) == 0);
	unsetenv("RUNM_NET_BACKEND");
	cfg.net_backend = NULL;
	CHECK(vm_choose_net(&cfg, &b, &err) == 0);
	CHECK(strcmp(b, access("/usr/bin/passt", X_OK) == 0 ? VM_NET_PASST : b) == 0);
}

TEST(ports_check)
{
	struct vm_port p = { .host_ip = "::1", .host_port = 1, .guest_port = 80 };
	struct vm_config cfg = { .network = true, .ports = &p, .n_ports = 1 };
	cleanup_error runm_error_t err = NULL;
	int busy = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	/* QEMU 7.2's slirp forwards no IPv6 */
	CHECK(vm_ports_check(&cfg, &err) < 0 && strstr(runm_error_msg(err), "IPv4") != NULL);
	runm_error_release(&err);
	/* a port in use inside a range is named */
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	CHECK(busy >= 0 && bind(busy, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(busy, 1) == 0);
	CHECK(getsockname(busy, (struct sockaddr *)&sa, &len) == 0);
	p = (struct vm_port){ .host_ip = "127.0.0.1", .host_port = (unsigned short)(ntohs(sa.sin_port) - 1),
			      .guest_port = 80, .count = 2 };
	CHECK(vm_ports_check(&cfg, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "in use") != NULL);
	close(busy);
	runm_error_release(&err);
	p.count = 60000;
	CHECK(vm_ports_check(&cfg, &err) < 0);
}

TEST(config_network_key)
{
	cleanup_error runm_error_t err = NULL;
	struct runm_config c;
	const char *ok = "network = \"slirp\"\n", *bad = "network = \"tap\"\n";

	CHECK(config_parse(ok, strlen(ok), "t.toml", &c, &err) == 0);
	CHECK_STR(c.network, "slirp");
	config_release(&c);
	CHECK(config_parse(bad, strlen(bad), "t.toml", &c, &err) < 0);
	CHECK(strstr(runm_error_msg(err), "t.toml:1") != NULL);
}
