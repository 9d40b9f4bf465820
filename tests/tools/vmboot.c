/* vmboot - boot the guest through src/vm N times and time each boot.
 *
 *   vmboot [-v] [--floor] [--pause] [--append KERNEL_ARGS] KERNEL INITRD STATE_DIR [N]
 *
 * Agent mode (default): from vm_start until the agent's hello (an empty
 * ttrpc DATA frame on stream 0) arrives on the channel, then vm_stop +
 * vm_free. --floor: INITRD is the floor image whose /init powers off at
 * once: from vm_start until the VMM exits. --pause: after the hello, QMP
 * stop + cont once (vm_pause, vm_resume). Each boot has a 60 s deadline;
 * missing it prints the guest console's tail and exits 1. -v logs the VMM
 * command line. Prints one line per boot and a summary (median, min, max). */
#include "common/log.h"
#include "common/util.h"
#include "engine/console.h"
#include "ttrpc/ttrpc.h"
#include "vm/vm.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOOT_DEADLINE_MS 60000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Copy what waits in fd to a capped log at path. */
static void copy_log(int fd, const char *path)
{
	struct console_log *l = NULL;
	char buf[4096];
	ssize_t n;

	if (console_log_open(path, 0, &l, NULL) < 0)
		return;
	set_nonblock(fd, 1);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		console_log_write(l, buf, (size_t)n, NULL);
	console_log_close(l);
}

/* Nothing reads the console socket or the VMM's output during a boot (a
 * quiet kernel: their backlogs hold it all): copy them to the logs first. */
static void print_tail(struct vm *vm)
{
	cleanup_free char *tail = NULL;

	copy_log(vm_console_fd(vm), vm_console_path(vm));
	copy_log(vm_vmm_log_fd(vm), vm_vmm_log_path(vm));
	tail = vm_console_tail(vm, 3000);
	fprintf(stderr, "---- guest console (tail) ----\n%s\n------------------------------\n", tail);
}

/* Wait for the 10-byte hello, or for the VMM's exit in floor mode. Returns
 * 0 when done, 1 on a missed deadline or an early VMM exit, -1 on error. */
static int wait_boot(struct vm *vm, bool floor, runm_error_t *err)
{
	uint64_t deadline = now_mono_ns() + BOOT_DEADLINE_MS * 1000000ull;
	uint8_t hdr[TTRPC_HEADER_LEN];
	size_t got = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = vm_pidfd(vm), .events = POLLIN },
				       { .fd = vm_channel_fd(vm), .events = POLLIN } };
		uint64_t now = now_mono_ns();
		int r;

		if (now >= deadline) {
			fprintf(stderr, "vmboot: no %s within %d ms\n", floor ? "VMM exit" : "hello",
				BOOT_DEADLINE_MS);
			return 1;
		}
		r = poll(p, floor ? 1 : 2, (int)((deadline - now + 999999) / 1000000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return runm_error_make(err, errno, "poll");
		if (!floor && (p[1].revents & (POLLIN | POLLHUP))) {
			ssize_t n = read(vm_channel_fd(vm), hdr + got, sizeof(hdr) - got);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return runm_error_make(err, errno, "read the channel");
			if (n == 0) {
				fprintf(stderr, "vmboot: channel closed before the hello\n");
				return 1;
			}
			if (n > 0)
				got += (size_t)n;
			if (got == sizeof(hdr)) {
				struct ttrpc_header h;
				ttrpc_header_decode(hdr, &h);
				if (h.type != TTRPC_DATA || h.stream_id != 0 || h.length != 0)
					return runm_error_make(err, EPROTO, "not a hello: type %u stream %u length %u",
							       (unsigned)h.type, (unsigned)h.stream_id,
							       (unsigned)h.length);
				return 0;
			}
			continue;
		}
		if (p[0].revents & POLLIN) {
			int status = 0;
			if (vm_try_reap(vm, &status, err) < 0)
				return -1;
			if (floor) {
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
					fprintf(stderr, "vmboot: VMM exit status 0x%x\n", (unsigned)status);
				return 0;
			}
			fprintf(stderr, "vmboot: the VMM exited (status 0x%x) before the hello\n", (unsigned)status);
			return 1;
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: vmboot [-v] [--floor] [--pause] [--append KERNEL_ARGS] KERNEL INITRD STATE_DIR [N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	cleanup_error runm_error_t err = NULL;
	cleanup_free uint64_t *ms = NULL;
	bool floor = false, pause_resume = false;
	const char *pos[4] = { 0 }, *append = NULL;
	int npos = 0, n = 1, done = 0;

	log_init("vmboot", LOG_LVL_INFO);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--floor") == 0)
			floor = true;
		else if (strcmp(argv[i], "--append") == 0 && i + 1 < argc)
			append = argv[++i];
		else if (strcmp(argv[i], "--pause") == 0)
			pause_resume = true;
		else if (strcmp(argv[i], "-v") == 0)
			log_init("vmboot", LOG_LVL_DEBUG);
		else if (argv[i][0] == '-' || npos == 4)
			usage();
		else
			pos[npos++] = argv[i];
	}
	if (npos < 3)
		usage();
	if (npos == 4 && (n = atoi(pos[3])) <= 0)
		usage();
	ms = xzalloc((size_t)n * sizeof(*ms));

	printf("accel %s, %s boot%s, %d run%s\n", vm_default_accel(), floor ? "floor" : "agent", floor ? "" : " (hello)",
	       n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		struct vm_config cfg = { .kernel = pos[0], .initrd = pos[1], .state_dir = pos[2],
					   .cmdline_extra = append };
		struct vm *vm = NULL;
		uint64_t t0 = now_mono_ns();
		int r;

		if (vm_start(&cfg, &vm, &err) < 0) {
			fprintf(stderr, "vmboot: %s\n", runm_error_msg(err));
			return 1;
		}
		r = wait_boot(vm, floor, &err);
		if (r == 0)
			ms[done++] = (now_mono_ns() - t0) / 1000000;
		if (r != 0) {
			if (r < 0)
				fprintf(stderr, "vmboot: %s\n", runm_error_msg(err));
			vm_stop(vm, 2000, NULL);
			print_tail(vm);
			vm_free(vm);
			return 1;
		}
		if (pause_resume) {
			t0 = now_mono_ns();
			if (vm_pause(vm, &err) < 0 || vm_resume(vm, &err) < 0) {
				fprintf(stderr, "vmboot: pause/resume: %s\n", runm_error_msg(err));
				vm_free(vm);
				return 1;
			}
			printf("pause + resume: %llu ms\n", (unsigned long long)((now_mono_ns() - t0) / 1000000));
		}
		t0 = now_mono_ns();
		if (vm_stop(vm, 5000, &err) < 0) {
			fprintf(stderr, "vmboot: stop: %s\n", runm_error_msg(err));
			vm_free(vm);
			return 1;
		}
		vm_free(vm);
		printf("boot %d: %llu ms (stop + free: %llu ms)\n", i + 1, (unsigned long long)ms[done - 1],
		       (unsigned long long)((now_mono_ns() - t0) / 1000000));
		fflush(stdout);
	}
	qsort(ms, (size_t)done, sizeof(*ms), cmp_u64);
	printf("%d boots, 0 hangs: median %llu ms, min %llu ms, max %llu ms\n", done,
	       (unsigned long long)(done % 2 ? ms[done / 2] : (ms[done / 2 - 1] + ms[done / 2]) / 2),
	       (unsigned long long)ms[0], (unsigned long long)ms[done - 1]);
	return 0;
}
