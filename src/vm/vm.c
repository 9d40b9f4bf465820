/* vm.c - see vm.h. The backend-independent half: choosing the backend and
 * the accelerator, spawning and reaping the VMM process, stop (ask, wait,
 * kill), cleanup and the console tail. The VMM-specific half is a
 * `struct vm_backend` (qemu.c). */
#include "vm-backend.h"
#include "net.h"
#include "accel.h"
#include "jail.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3 /* Linux 5.4; older glibc headers lack it */
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2) /* Linux 5.11 */
#endif

/* How long vm_free gives a still-running VMM to quit before SIGKILL. */
#define VM_FREE_STOP_MS 1000

static const struct vm_backend *const backends[] = {
	&vm_qemu_backend,
};

static const struct vm_backend *find_backend(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

/* What the automatic choice gives for cfg (kernel and VMM binary are part of
 * the verdict key). c->key and c->why are malloc'd. */
struct auto_choice {
	const char *accel;
	bool proven;     /* the facts prove KVM can boot it (or it is not KVM) */
	bool skipped;    /* KVM exists but is not used */
	bool remembered; /* a verdict under the state root says so already */
	char *dir, *key, *why;
};

static void auto_choice_release(struct auto_choice *c)
{
	free(c->dir);
	free(c->key);
	free(c->why);
}

static void auto_choose(const struct vm_config *cfg, const struct vm_backend *ops, struct auto_choice *c)
{
	struct accel_facts f;
	struct accel_decision d;
	cleanup_free char *binary = NULL;
	char *remembered = NULL;

	memset(c, 0, sizeof(*c));
	/* RUNM_FACTS_ROOT: a fake host tree, for tests of the fallback. */
	accel_read_facts(getenv("RUNM_FACTS_ROOT"), &f);
	accel_decide(&f, &d);
	c->accel = d.accel;
	c->proven = d.conclusive;
	c->skipped = d.kvm_skipped;
	c->why = xstrdup(d.reason);
	if (f.macos)
		return;
	if (ops->binary == NULL || ops->binary(cfg, &binary, NULL) < 0)
		binary = NULL;
	c->dir = accel_state_dir();
	c->key = accel_verdict_key(cfg->kernel, binary, &f);
	if (accel_verdict_read(c->dir, c->key, &remembered) == 1) {
		c->remembered = true;
		if (strcmp(d.accel, "kvm") == 0) {
			/* An earlier boot under KVM failed with this kernel, VMM and host. */
			c->accel = "tcg";
			c->proven = true;
			c->skipped = true;
			free(c->why);
			c->why = steal_ptr(&remembered);
		}
		free(remembered);
	}
}

static void remember(const struct auto_choice *c, const char *why)
{
	cleanup_error runm_error_t err = NULL;
	if (c->dir && c->key && accel_verdict_write(c->dir, c->key, why, &err) < 0)
		log_debug("%s", runm_error_msg(err));
}

const char *vm_auto_accel(const char *kernel, char **why)
{
	struct vm_config cfg = { .kernel = kernel };
	struct auto_choice c;
	const char *a;

	auto_choose(&cfg, backends[0], &c);
	a = c.accel;
	if (why)
		*why = xasprintf("%s%s%s", c.skipped ? "KVM skipped: " : "", c.why,
				 c.remembered && c.skipped ? " (remembered under runm's state root)" : "");
	auto_choice_release(&c);
	return a;
}

const char *vm_default_accel(void)
{
	const char *e = getenv("RUNM_ACCEL");
	if (e && *e && strcmp(e, "auto") != 0)
		return e;
	return vm_auto_accel(NULL, NULL);
}

int vm_check_accel(const char *accel, runm_error_t *err)
{
	struct accel_facts f;
	accel_read_facts(getenv("RUNM_FACTS_ROOT"), &f);
	return accel_check(accel, &f, err);
}

/* RUNM_ACCEL, else cfg->accel (runm's config), else the automatic choice.
 * An explicit one is checked against the host and never falls back. */
static int choose_accel(const struct vm_config *cfg, struct vm *vm, runm_error_t *err)
{
	static const char *const names[] = { "kvm", "hvf", "tcg" };
	const char *a = getenv("RUNM_ACCEL");
	struct auto_choice c;

	if (a == NULL || *a == '\0')
		a = cfg->accel;
	if (a && *a && strcmp(a, "auto") != 0) {
		if (vm_check_accel(a, err) < 0)
			return -1;
		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (strcmp(a, names[i]) == 0)
				vm->accel = names[i];
		return 0;
	}
	auto_choose(cfg, vm->ops, &c);
	vm->accel = c.accel;
	vm->accel_auto = true;
	vm->accel_proven = c.proven;
	if (c.skipped && !c.remembered) {
		/* Once per kernel, VMM and host: the verdict file keeps later
		 * starts quiet (and `runm check` explains it any time). */
		log_warn("KVM skipped: %s; using TCG", c.why);
		remember(&c, c.why);
	} else if (c.skipped) {
		log_info("KVM skipped: %s; using TCG", c.why);
	}
	if (strcmp(c.accel, "kvm") == 0) {
		vm->verdict_dir = steal_ptr(&c.dir);
		vm->verdict_key = steal_ptr(&c.key);
	}
	auto_choice_release(&c);
	return 0;
}

unsigned vm_kvm_trial_ms(const struct vm *vm)
{
	if (!vm->accel_auto || vm->accel_proven || strcmp(vm->accel, "kvm") != 0)
		return 0;
	return VM_KVM_TRIAL_MS;
}

static const char *s_or(const char *s)
{
	return s ? s : "";
}

bool vm_kvm_fallback(const struct vm *vm, bool timed_out)
{
	cleanup_free char *log = NULL, *why = NULL;
	struct auto_choice c = { .dir = vm->verdict_dir, .key = vm->verdict_key };
	char *first, *save = NULL;

	if (!vm->accel_auto || strcmp(vm->accel, "kvm") != 0)
		return false;
	log = vm_file_tail(vm->vmm_log_path, 16384);
	first = strtok_r(log, "\n", &save);
	if (first && strlen(first) > 160)
		first[160] = '\0';
	/* QEMU's words when KVM cannot run the guest: an instruction it cannot
	 * emulate (kvm_pvm on a standard kernel, pitfalls.md), or vCPU state it
	 * cannot set (kvm_pvm with -cpu host: "failed to set MSR ..."). */
	if (strstr(s_or(first), "KVM internal error") || strstr(s_or(first), "emulation failure") ||
	    strstr(s_or(first), "MSR") || strstr(s_or(first), "kvm"))
		why = xasprintf("the guest did not boot under KVM (%s)", first);
	else if (timed_out && !vm->accel_proven)
		why = xasprintf("the guest did not answer within %u ms under KVM", VM_KVM_TRIAL_MS);
	else if (!vm->accel_proven)
		why = xasprintf("the VMM failed under KVM before the guest answered (%s)", first ? first : "no message");
	else
		return false;
	log_warn("KVM skipped: %s; retrying under TCG (remembered: later starts use TCG at once)", why);
	remember(&c, why);
	return true;
}

int vm_find_vmm(char **path, runm_error_t *err)
{
	struct vm_config cfg = { 0 };
	return backends[0]->binary(&cfg, path, err);
}

const char *vm_accel(const struct vm *vm)
{
	return vm->accel;
}

int vm_ms_left(uint64_t deadline_ns)
{
	uint64_t now = now_mono_ns();
	uint64_t ms;
	if (now >= deadline_ns)
		return 0;
	/* Round up so a poll never returns just before the deadline and spins. */
	ms = (deadline_ns - now + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int vm_start(const struct vm_config *cfg, struct vm **out, runm_error_t *err)
{
	const char *bname = cfg->backend;
	const struct vm_backend *ops;
	struct vm *vm;
	struct stat st;

	if (bname == NULL || *bname == '\0')
		bname = getenv("RUNM_VMM");
	if (bname == NULL || *bname == '\0')
		bname = "qemu";
	ops = find_backend(bname);
	if (ops == NULL)
		return runm_error_make(err, ENOTSUP, "unknown VMM backend `%s` (available: qemu)", bname);
	if (cfg->kernel == NULL || cfg->initrd == NULL || cfg->state_dir == NULL)
		return runm_error_make(err, EINVAL, "vm_start: kernel, initrd and state_dir are required");
	if (stat(cfg->state_dir, &st) < 0)
		return runm_error_make(err, errno, "VM state directory `%s`", cfg->state_dir);
	if (!S_ISDIR(st.st_mode))
		return runm_error_make(err, ENOTDIR, "VM state directory `%s`", cfg->state_dir);

	vm = xzalloc(sizeof(*vm));
	vm->ops = ops;
	if (choose_accel(cfg, vm, err) < 0) {
		free(vm);
		return -1;
	}
	vm->state_dir = xstrdup(cfg->state_dir);
	vm->console_path = xasprintf("%s/" VM_CONSOLE_LOG, cfg->state_dir);
	vm->console_old_path = xasprintf("%s/" VM_CONSOLE_LOG_OLD, cfg->state_dir);
	vm->vmm_log_path = xasprintf("%s/" VM_VMM_LOG, cfg->state_dir);
	vm->pid = -1;
	vm->pidfd = -1;
	vm->chan_fd = -1;
	vm->console_fd = -1;
	vm->vmm_log_fd = -1;
	vm->net_pid = -1;
	vm->net_pidfd = -1;
	vm->netns_fd = cfg->netns_fd;
	vm_template_prepare(vm, cfg);
	if (ops->start(vm, cfg, vm->accel, err) < 0) {
		const char *a = vm->accel;
		vm_free(vm);
		return runm_error_wrap(err, "start %s (accel %s)", ops->name, a);
	}
	*out = vm;
	return 0;
}

/* ---- the VMM process ---- */

/* step: the jail step that failed (jail.h), -1 for anything else. */
static void child_fail_step(int errpipe, int e, int step)
{
	int msg[2] = { e, step };
	/* Only async-signal-safe calls after fork: the parent may have threads. */
	(void)!write(errpipe, msg, sizeof(msg));
	_exit(127);
}

static void child_fail(int errpipe, int e)
{
	child_fail_step(errpipe, e, -1);
}

/* Runs in the forked child: nothing here may allocate or take a lock. */
static void child_exec(char *const argv[], const int *pass_fds, size_t n_pass, int devnull, int logfd, int errpipe,
		       pid_t parent, int netns_fd, bool thp_off, const struct jail *jail)
{
	size_t step = 0;
	int e;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	/* Above every target fd (0..2 and 3..3+n_pass-1). */
	int base = 3 + (int)n_pass;
	int src[2 + 8];
	size_t n_src = 2 + n_pass;

	/* A separate process group keeps the terminal's ^C (sent to the
	 * foreground group) away from the VMM: the caller decides its end. */
	setpgid(0, 0);
	/* PDEATHSIG fires when the forking *thread* exits: callers spawn from
	 * their long-lived loop thread. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(errpipe, errno);
	/* The parent may have died between fork and prctl: then nobody would kill us. */
	if (getppid() != parent)
		_exit(127);
	/* The VMM lives in the container's network namespace, as Kata's does:
	 * the namespace of the task's pid is where ctr --cni puts the network. */
	if (netns_fd > 0 && setns(netns_fd, CLONE_NEWNET) < 0)
		child_fail(errpipe, errno);
	/* Under TCG, no transparent huge pages (inherited across exec): QEMU
	 * asks for them on all guest RAM, and a guest touching one 4 KiB page
	 * then costs the host 2 MiB; an idle restored VM held ~13 MiB more
	 * that way. Emulation gains nothing from them; KVM's EPT does (kept). */
	if (thp_off && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
		child_fail(errpipe, errno);
	/* Blocked signals and ignored dispositions survive exec; the shim's
	 * loop blocks SIGTERM/SIGCHLD for its signalfd, QEMU must not inherit that. */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Move every source above the targets first: a source may sit on a
	 * target number (a caller with stdin closed gets /dev/null as fd 0),
	 * and dup2 onto the same number would neither move it nor clear CLOEXEC. */
	errpipe = fcntl(errpipe, F_DUPFD_CLOEXEC, base);
	if (errpipe < 0)
		_exit(127);
	src[0] = fcntl(devnull, F_DUPFD_CLOEXEC, base);
	src[1] = fcntl(logfd, F_DUPFD_CLOEXEC, base);
	for (size_t i = 0; i < n_pass; i++)
		src[2 + i] = fcntl(pass_fds[i], F_DUPFD_CLOEXEC, base);
	for (size_t i = 0; i < n_src; i++)
		if (src[i] < 0)
			child_fail(errpipe, errno);
	/* dup2 to a different number clears FD_CLOEXEC on the target. */
	if (dup2(src[0], 0) < 0 || dup2(src[1], 1) < 0 || dup2(src[1], 2) < 0)
		child_fail(errpipe, errno);
	for (size_t i = 0; i < n_pass; i++)
		if (dup2(src[2 + i], 3 + (int)i) < 0)
			child_fail(errpipe, errno);
	/* Everything else closes at exec: the fds of a shim are its containers'. */
	if (syscall(SYS_close_range, (unsigned)base, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		/* Before Linux 5.11: close them by hand (the errpipe closes at exec). */
		long max = sysconf(_SC_OPEN_MAX);
		for (int fd = base; fd < (max > 0 ? max : 1024); fd++)
			if (fd != errpipe)
				close(fd);
	}
	/* After the network namespace (the jail's mounts need no network, the
	 * tap's namespace must be joined with CAP_SYS_ADMIN, dropped here). */
	if (jail && (e = jail_enter(jail, &step)) != 0)
		child_fail_step(errpipe, e, (int)step);
	execv(argv[0], argv);
	child_fail(errpipe, errno);
}

/* Spawn with stdout and stderr on logfd (not taken over). */
static int spawn(const struct vm *vm, const struct jail *jail, char *const argv[], const int *pass_fds, size_t n_pass,
		 int logfd, pid_t *out_pid, int *out_pidfd, runm_error_t *err)
{
	cleanup_close int devnull = -1, rd = -1, wr = -1;
	int pipefd[2];
	pid_t parent = getpid(), pid;
	ssize_t n;
	int msg[2] = { 0, -1 }, pidfd;

	if (n_pass > 8)
		return runm_error_make(err, EINVAL, "vm_spawn: at most 8 fds to pass");
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return runm_error_make(err, errno, "open /dev/null");
	/* Tells the parent whether exec worked: closed by a successful exec,
	 * carries errno otherwise (the usual CLOEXEC pipe). */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe");
	rd = pipefd[0];
	wr = pipefd[1];

	pid = fork();
	if (pid < 0)
		return runm_error_make(err, errno, "fork");
	if (pid == 0)
		child_exec(argv, pass_fds, n_pass, devnull, logfd, wr, parent, vm->netns_fd,
			   vm->accel && strcmp(vm->accel, "tcg") == 0, jail);
	/* Also in the parent, so the group exists before anyone signals it. */
	setpgid(pid, pid);
	close_and_reset(&wr);
	do
		n = read(rd, msg, sizeof(msg));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		int status;
		/* The child _exits right after writing: this wait is immediate. */
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (jail && msg[1] >= 0) {
			cleanup_free char *what = jail_step_describe(jail, (size_t)msg[1]);
			return runm_error_make(err, msg[0], "%s", what);
		}
		return runm_error_make(err, msg[0], "exec `%s`", argv[0]);
	}
	/* The child cannot be reaped before we wait for it, so its pid is still
	 * ours: no race between fork and pidfd_open. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return runm_error_make(err, e, "pidfd_open (Linux >= 5.3 needed)");
	}
	set_cloexec(pidfd, 1);
	*out_pid = pid;
	*out_pidfd = pidfd;
	return 0;
}

int vm_spawn_process(const struct vm *vm, char *const argv[], const int *pass_fds, size_t n_pass,
		     const char *log_path, pid_t *out_pid, int *out_pidfd, runm_error_t *err)
{
	cleanup_close int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0)
		return runm_error_make(err, errno, "create `%s`", log_path);
	return spawn(vm, NULL, argv, pass_fds, n_pass, logfd, out_pid, out_pidfd, err);
}

int vm_spawn(struct vm *vm, char *const argv[], const int *pass_fds, size_t n_pass, runm_error_t *err)
{
	cleanup_close int wr = -1;
	int p[2];

	/* Not a file: a guest that makes the VMM complain (a virtio device it
	 * breaks, resets and breaks again) could fill the host's disk. The
	 * caller keeps it in a bounded vmm.log (vm_vmm_log_fd); a full pipe
	 * blocks the VMM's next message, not the host. */
	if (unlink(vm->vmm_log_path) < 0 && errno != ENOENT)
		return runm_error_make(err, errno, "remove `%s`", vm->vmm_log_path);
	if (pipe2(p, O_CLOEXEC) < 0)
		return runm_error_make(err, errno, "pipe for the VMM's output");
	wr = p[1];
	close_and_reset(&vm->vmm_log_fd);
	vm->vmm_log_fd = p[0];
	return spawn(vm, vm->jail, argv, pass_fds, n_pass, wr, &vm->pid, &vm->pidfd, err);
}

int vm_wait_exit(struct vm *vm, uint64_t deadline_ns, runm_error_t *err)
{
	struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
	if (vm->reaped)
		return 1;
	for (;;) {
		int r = poll(&p, 1, vm_ms_left(deadline_ns));
		if (r > 0)
			return 1;
		if (r == 0) /* vm_ms_left rounds up: a timeout means the deadline passed */
			return 0;
		if (errno != EINTR)
			return runm_error_make(err, errno, "poll on the VMM's pidfd");
	}
}

/* waitid on the pidfd, falling back to the pid on kernels before 5.4 (the
 * pid is safe: it is our unreaped child). flags: WNOHANG or 0. */
static int reap(struct vm *vm, int flags, runm_error_t *err)
{
	siginfo_t si;
	int r;

	if (vm->reaped)
		return 1;
	if (vm->pid <= 0)
		return runm_error_make(err, ESRCH, "no VMM process");
	for (;;) {
		memset(&si, 0, sizeof(si));
		r = waitid(P_PIDFD, (id_t)vm->pidfd, &si, WEXITED | flags);
		if (r < 0 && errno == EINVAL)
			r = waitid(P_PID, (id_t)vm->pid, &si, WEXITED | flags);
		if (r == 0 || errno != EINTR)
			break;
	}
	if (r < 0) {
		if (errno == ECHILD) {
			/* Someone else (a waitpid(-1) in the caller) reaped it: the
			 * status is lost, but the pid is no longer ours to signal. */
			vm->reaped = true;
			vm->wstatus = 0;
		}
		return runm_error_make(err, errno, "wait for the VMM (pid %d)", (int)vm->pid);
	}
	if (si.si_pid == 0)
		return 0;
	switch (si.si_code) {
	case CLD_EXITED:
		vm->wstatus = (si.si_status & 0xff) << 8;
		break;
	case CLD_DUMPED:
		vm->wstatus = (si.si_status & 0x7f) | 0x80;
		break;
	default: /* CLD_KILLED */
		vm->wstatus = si.si_status & 0x7f;
		break;
	}
	vm->reaped = true;
	return 1;
}

int vm_try_reap(struct vm *vm, int *wstatus, runm_error_t *err)
{
	int r = reap(vm, WNOHANG, err);
	if (r == 1 && wstatus)
		*wstatus = vm->wstatus;
	return r;
}

/* Hand a collected error over to the caller's err. Returns -1. */
static int pass_error(runm_error_t *err, runm_error_t *from)
{
	if (err) {
		runm_error_release(err);
		*err = steal_ptr(from);
	}
	return -1;
}

void vm_kill(pid_t pid, int pidfd)
{
	/* Through the pidfd where we can: it names this process, never a reuse. */
	if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0 && errno == ENOSYS)
		kill(pid, SIGKILL);
}

int vm_stop(struct vm *vm, unsigned timeout_ms, runm_error_t *err)
{
	cleanup_error runm_error_t qerr = NULL;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	int r;

	if (vm->pid <= 0 || vm->reaped)
		return 0;
	r = reap(vm, WNOHANG, &qerr);
	if (r < 0 && !vm->reaped)
		return pass_error(err, &qerr);
	if (vm->reaped) /* exited already (or reaped elsewhere): nothing to stop */
		return 0;
	/* Wait for the exit even when quit failed: a closed QMP socket most
	 * likely means the VMM is already on its way out. */
	if (vm->ops->quit(vm, deadline, &qerr) < 0) {
		log_debug("VMM pid %d: quit: %s", (int)vm->pid, runm_error_msg(qerr));
		runm_error_release(&qerr);
	}
	if (vm_wait_exit(vm, deadline, &qerr) < 0)
		log_debug("VMM pid %d: %s", (int)vm->pid, runm_error_msg(qerr));
	if (reap(vm, WNOHANG, NULL) == 1)
		return 0;
	log_debug("VMM pid %d did not quit within %u ms: SIGKILL", (int)vm->pid, timeout_ms);
	vm_kill(vm->pid, vm->pidfd);
	/* SIGKILL cannot be caught: this wait ends as soon as the kernel tears it down. */
	runm_error_release(&qerr);
	if (reap(vm, 0, &qerr) < 0 && !vm->reaped)
		return pass_error(err, &qerr);
	return 0;
}

bool vm_wait(struct vm *vm, unsigned timeout_ms)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (vm->pid <= 0 || vm->reaped)
		return true;
	if (vm_wait_exit(vm, deadline, NULL) != 1)
		return false;
	return reap(vm, WNOHANG, NULL) == 1 || vm->reaped;
}

int vm_pause(struct vm *vm, runm_error_t *err)
{
	if (vm->pid <= 0 || vm->reaped)
		return runm_error_make(err, ESRCH, "the VMM is not running");
	return vm->ops->pause(vm, err);
}

int vm_resume(struct vm *vm, runm_error_t *err)
{
	if (vm->pid <= 0 || vm->reaped)
		return runm_error_make(err, ESRCH, "the VMM is not running");
	return vm->ops->resume(vm, err);
}

int vm_channel_fd(const struct vm *vm)
{
	return vm->chan_fd;
}

int vm_take_channel_fd(struct vm *vm)
{
	return steal_fd(&vm->chan_fd);
}

int vm_console_fd(const struct vm *vm)
{
	return vm->console_fd;
}

const char *vm_console_path(const struct vm *vm)
{
	return vm->console_path;
}

int vm_vmm_log_fd(const struct vm *vm)
{
	return vm->vmm_log_fd;
}

const char *vm_vmm_log_path(const struct vm *vm)
{
	return vm->vmm_log_path;
}

pid_t vm_pid(const struct vm *vm)
{
	return vm->pid;
}

int vm_pidfd(const struct vm *vm)
{
	return vm->pidfd;
}

char *vm_file_tail(const char *path, size_t max)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	size_t want, got = 0, j = 0;
	char *buf;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || max == 0)
		return xstrdup("");
	want = (size_t)st.st_size < max ? (size_t)st.st_size : max;
	buf = xmalloc(want + 1);
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, st.st_size - (off_t)want + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	/* The console is written by the guest: untrusted bytes that end up in
	 * error messages and logs. Keep text, drop \r (serial line endings),
	 * and neutralise other control bytes (escape sequences, NULs). */
	for (size_t i = 0; i < got; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\r')
			continue;
		buf[j++] = (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) ? (char)c : '?';
	}
	buf[j] = '\0';
	return buf;
}

char *vm_console_tail(const struct vm *vm, size_t max)
{
	cleanup_free char *vmm = NULL, *con = NULL;
	size_t vlen;

	if (vm == NULL)
		return xstrdup("");
	/* The VMM's own errors (a kernel it cannot load, a bad option) explain
	 * an empty console: give them up to half of the budget. */
	vmm = vm_file_tail(vm->vmm_log_path, max / 2);
	vlen = strlen(vmm);
	while (vlen > 0 && vmm[vlen - 1] == '\n')
		vmm[--vlen] = '\0';
	con = vm_file_tail(vm->console_path, max - vlen);
	/* Just rotated: the rest of the budget from the log before. */
	if (strlen(con) < max - vlen) {
		cleanup_free char *old = vm_file_tail(vm->console_old_path, max - vlen - strlen(con));
		if (old[0]) {
			char *both = xasprintf("%s%s", old, con);
			free(con);
			con = both;
		}
	}
	if (vlen == 0)
		return steal_ptr(&con);
	return xasprintf("%s%s[%s: %s]", con, con[0] && con[strlen(con) - 1] != '\n' ? "\n" : "", vm->ops->name,
			 vmm);
}

void vm_free(struct vm *vm)
{
	cleanup_error runm_error_t err = NULL;

	if (vm == NULL)
		return;
	if (vm->pid > 0 && !vm->reaped && vm_stop(vm, VM_FREE_STOP_MS, &err) < 0)
		log_warn("stop VMM pid %d: %s", (int)vm->pid, runm_error_msg(err));
	vm_net_stop(vm);
	vm_net_release(vm);
	if (vm->ops && vm->ops->release)
		vm->ops->release(vm);
	close_and_reset(&vm->chan_fd);
	close_and_reset(&vm->console_fd);
	close_and_reset(&vm->vmm_log_fd);
	close_and_reset(&vm->pidfd);
	unlink(vm->console_path);
	unlink(vm->console_old_path);
	unlink(vm->vmm_log_path);
	{
		cleanup_free char *old = xasprintf("%s.1", vm->vmm_log_path);
		unlink(old);
	}
	if (vm->net_log_path)
		unlink(vm->net_log_path);
	jail_cleanup(vm->jail);
	jail_free(vm->jail);
	free(vm->net_log_path);
	free(vm->console_path);
	free(vm->console_old_path);
	free(vm->vmm_log_path);
	free(vm->state_dir);
	free(vm->verdict_dir);
	free(vm->verdict_key);
	free(vm->tpl_dir);
	free(vm->tpl_desc);
	free(vm->restore_path);
	free(vm);
}

bool vm_is_ours(pid_t pid, const char *state_dir)
{
	cleanup_free char *path = xasprintf("/proc/%d/cmdline", (int)pid), *cmd = NULL;
	size_t len;

	if (pid <= 0 || read_file_at(AT_FDCWD, path, 1 << 16, &cmd, &len, NULL) < 0)
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	/* state_dir is on every VMM's command line (qemu.c: -name). */
	return (strstr(cmd, "qemu") != NULL || strstr(cmd, "vfkit") != NULL) && strstr(cmd, state_dir) != NULL;
}
