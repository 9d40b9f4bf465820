/* runm-agent - the guest's PID 1. Mounts the basics, loads the modules,
 * then serves runm's agent API (service.c) on the virtio-serial channel from
 * the host, in one event loop: signals arrive through signalfd, SIGCHLD
 * reaps every child (orphans included, as a PID 1 must). When the host goes
 * away or asks for it, the VM powers off. */
#include "boot.h"
#include "net.h"
#include "proc.h"
#include "service.h"
#include "common/log.h"
#include "common/util.h"
#include "vm/vm.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHANNEL_TIMEOUT_MS 20000

static void on_signal(struct loop *loop, int signo, void *data)
{
	(void)loop;
	(void)data;
	if (signo == SIGCHLD) {
		proc_reap();
		return;
	}
	log_info("signal %d: powering off", signo);
	boot_poweroff();
}

static void on_host_gone(struct ttrpc_server *srv, void *data)
{
	(void)srv;
	(void)data;
	log_info("host channel closed: powering off");
	boot_poweroff();
}

/* The hello (an empty DATA frame on stream 0, ignored by any ttrpc peer)
 * tells the host that our end of the port is open: it writes nothing before. */
static int send_hello(int fd, runm_error_t *err)
{
	struct ttrpc_header h = { .length = 0, .stream_id = 0, .type = TTRPC_DATA, .flags = 0 };
	uint8_t buf[TTRPC_HEADER_LEN];
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	ttrpc_header_encode(&h, buf);
	if (poll(&p, 1, CHANNEL_TIMEOUT_MS) <= 0)
		return runm_error_make(err, ETIMEDOUT, "host channel not writable");
	if (write_all(fd, buf, sizeof(buf)) < 0)
		return runm_error_make(err, errno, "write hello to the host");
	return 0;
}

static int agent_main(runm_error_t *err)
{
	struct loop *loop = NULL;
	struct ttrpc_server *srv;
	sigset_t set;
	int fd;

	if (boot_mount_basics(err) < 0)
		return -1;
	boot_console();
	log_init("runm-agent", LOG_LVL_INFO);
	boot_load_modules();
	mkdir("/run/runm", 0700);
	/* Not fatal: a container without network still runs (and says why in the console). */
	if (net_setup(err) < 0) {
		log_warn("network: %s", runm_error_msg(*err));
		runm_error_release(err);
	}
	if (loop_new(&loop, err) < 0)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPWR);
	sigaddset(&set, SIGPIPE);
	if (loop_signals(loop, &set, on_signal, NULL, err) < 0)
		return -1;
	fd = boot_open_channel(VM_CHANNEL_NAME, CHANNEL_TIMEOUT_MS, err);
	if (fd < 0 || send_hello(fd, err) < 0)
		return -1;
	srv = ttrpc_server_new(loop);
	agent_service_register(srv, loop);
	ttrpc_server_on_conn_closed(srv, on_host_gone, NULL);
	ttrpc_server_serve_fd(srv, fd);
	log_info("ready");
	return loop_run(loop);
}

int main(void)
{
	cleanup_error runm_error_t err = NULL;

	if (getpid() != 1) {
		fprintf(stderr, "runm-agent: must run as PID 1 inside a runm VM\n");
		return 1;
	}
	if (agent_main(&err) < 0)
		log_error("fatal: %s", runm_error_msg(err));
	boot_poweroff();
}
