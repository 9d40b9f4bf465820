/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *log_tag = "runm";
static enum log_level log_max = LOG_LVL_INFO;

void log_init(const char *tag, enum log_level level)
{
	log_tag = tag;
	log_max = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	int saved = errno;
	char buf[2048];
	va_list ap;
	struct timespec ts;

	if (level > log_max)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One fprintf per line so concurrent writers to a shared log do not interleave mid-line. */
	fprintf(stderr, "%lld.%03ld %s[%s] %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000, log_tag,
		names[level], buf);
	errno = saved;
}
