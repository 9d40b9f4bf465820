/* floor-init.c - the smallest possible guest /init: power the VM off at once.
 * Booting it measures the floor (kernel + QEMU) under every runm boot.
 *
 * Built with -nostdlib: a static glibc binary is ~700 KB that the kernel would
 * have to unpack on every boot, which is no longer a floor. So: one raw
 * reboot(2) syscall per architecture. */
#include <linux/reboot.h>
#include <sys/syscall.h>

static long raw_syscall4(long nr, long a, long b, long c, long d)
{
#if defined(__x86_64__)
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
	return x0;
#else
#error "floor-init: unsupported architecture"
#endif
}

void _start(void);
void _start(void)
{
	raw_syscall4(SYS_sync, 0, 0, 0, 0);
	raw_syscall4(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_POWER_OFF, 0);
	/* Power-off failed: returning from PID 1 is not possible without libc,
	 * so exit; PID 1 exiting panics the kernel, and panic=-1 with QEMU's
	 * -no-reboot still ends the VM. */
	for (;;)
		raw_syscall4(SYS_exit, 1, 0, 0, 0);
}
