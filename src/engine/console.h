/* console.h - the host side of a VM's serial console (and of the VMM's own
 * output, the same way: vm_vmm_log_fd, vmm.log): the VMM writes the
 * guest's console to a socket (vm_console_fd), read from the loop and kept
 * in a log that never grows past CONSOLE_LOG_MAX bytes. A guest kernel, or a
 * privileged container writing to /dev/kmsg or the UART, can write all it
 * likes; the host keeps its last 1-2 MiB. When full, the log is renamed to
 * <path>.1 (replacing the one before) and starts again empty: at most 2 *
 * CONSOLE_LOG_MAX bytes on disk, the last CONSOLE_LOG_MAX at least kept.
 * While the loop does not read, the socket fills and the guest's UART
 * writes wait (QEMU's serial device retries when the socket drains, it
 * buffers nothing): a guest flooding its console slows only itself. */
#ifndef RUNM_ENGINE_CONSOLE_H
#define RUNM_ENGINE_CONSOLE_H

#include "common/error.h"
#include "common/loop.h"

#include <stddef.h>

#define CONSOLE_LOG_MAX (1u << 20)
/* What a full log is renamed to: <path> CONSOLE_LOG_OLD_SUFFIX. */
#define CONSOLE_LOG_OLD_SUFFIX ".1"

/* ---- the capped log ---- */

struct console_log;

/* Create (truncate) the log at path, and remove a <path>.1 left by an
 * earlier VM. max: its cap in bytes (0 = CONSOLE_LOG_MAX). */
int console_log_open(const char *path, size_t max, struct console_log **out, runm_error_t *err);
/* Append len bytes, rotating as often as needed so no file exceeds max. A
 * write that fails (a full disk) loses those bytes, nothing else: -1 then. */
int console_log_write(struct console_log *l, const void *buf, size_t len, runm_error_t *err);
/* Bytes in the current file (for tests). */
size_t console_log_size(const struct console_log *l);
/* Close the log (its files stay). NULL-safe. */
void console_log_close(struct console_log *l);

/* ---- the reader ---- */

struct console;

/* Read fd (the VMM's console socket; not owned, must outlive the console)
 * from loop into the capped log at path. fd is made non-blocking. */
int console_start(struct loop *loop, int fd, const char *path, struct console **out, runm_error_t *err);
/* One more fd into a capped log of its own, read, drained and freed with c
 * (the VMM's stdout and stderr, vm_vmm_log_fd). At most one. */
int console_add(struct console *c, int fd, const char *path, runm_error_t *err);
/* Read what is waiting in the socket now, without the loop (bounded): before
 * the log is shown in an error message, when the VMM has just exited. */
void console_drain(struct console *c);
/* Stop reading, close the log. NULL-safe. */
void console_free(struct console *c);

#endif
