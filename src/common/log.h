/* log.h - one-line logging to stderr with a program tag and level. The shim
 * points stderr at containerd's log FIFO; the agent at the guest console. */
#ifndef RUNM_LOG_H
#define RUNM_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *tag, enum log_level level);
/* Also (fd >= 0) or instead (only_fd) write each line to fd: as runc's JSON
 * log lines ({"level","msg","time"}, what containerd's runc shim parses
 * from --log) when json, else as text. The fd stays the caller's. */
void log_to_fd(int fd, bool json, bool only_fd);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
