/* boot.h - what runm-agent does as PID 1 before it can serve: mount the
 * pseudo filesystems, point stdio at the console, load the kernel modules
 * the image lists, find the host channel; and the way out (power off). */
#ifndef RUNM_AGENT_BOOT_H
#define RUNM_AGENT_BOOT_H

#include "common/error.h"

/* Mount /proc /sys /dev /dev/pts /dev/shm /run /tmp /sys/fs/cgroup; safe to run twice. */
int boot_mount_basics(runm_error_t *err);
/* stdin/stdout/stderr on /dev/console (the kernel gives PID 1 none in an initramfs without /dev). */
void boot_console(void);
/* Load the modules listed in /etc/runm/modules, in order. A module that fails is logged, not fatal. */
void boot_load_modules(void);
/* Open the virtio-serial port named `name`, waiting up to timeout_ms for it to appear. */
int boot_open_channel(const char *name, unsigned timeout_ms, runm_error_t *err);
/* sync, unmount, power off. Never returns. */
void boot_poweroff(void) __attribute__((noreturn));

#endif
