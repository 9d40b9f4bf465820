/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *log_tag = "runm";
static enum log_level log_max = LOG_LVL_INFO;
static int log_fd = -1;
static bool log_json, log_only_fd;

void log_to_fd(int fd, bool json, bool only_fd)
{
	log_fd = fd;
	log_json = json;
	log_only_fd = only_fd && fd >= 0;
}

/* s as the inside of a JSON string, cut to fit out. */
static void json_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;
	for (; *s && o + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static void write_fd_line(const char *level, const char *msg, const struct timespec *ts)
{
	char line[4096 + 128], esc[4096], when[32];
	struct tm tm;
	int n;
	time_t t = ts->tv_sec;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_escape(msg, esc, sizeof(esc));
	if (log_json)
		n = snprintf(line, sizeof(line), "{\"level\":\"%s\",\"msg\":\"%s\",\"time\":\"%s\"}\n", level, esc, when);
	else
		n = snprintf(line, sizeof(line), "time=\"%s\" level=%s msg=\"%s\"\n", when, level, esc);
	if (n > 0)
		(void)!write(log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

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
	if (log_fd >= 0)
		write_fd_line(level == LOG_LVL_WARN ? "warning" : names[level], buf, &ts);
	if (log_only_fd) {
		errno = saved;
		return;
	}
	/* One fprintf per line so concurrent writers to a shared log do not interleave mid-line. */
	fprintf(stderr, "%lld.%03ld %s[%s] %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000, log_tag,
		names[level], buf);
	errno = saved;
}
