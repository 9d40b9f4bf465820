/* error.c - see error.h. */
#include "error.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int runm_error_make(runm_error_t *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	char *base;
	runm_error_t e;

	va_start(ap, fmt);
	base = xvasprintf(fmt, ap);
	va_end(ap);
	if (err == NULL) {
		free(base);
		return -1;
	}
	runm_error_release(err);
	e = xzalloc(sizeof(*e));
	e->status = errnum;
	if (errnum != 0) {
		e->msg = xasprintf("%s: %s", base, strerror(errnum));
		free(base);
	} else {
		e->msg = base;
	}
	*err = e;
	return -1;
}

int runm_error_wrap(runm_error_t *err, const char *fmt, ...)
{
	va_list ap;
	char *ctx, *msg;

	if (err == NULL || *err == NULL)
		return -1;
	va_start(ap, fmt);
	ctx = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = msg;
	return -1;
}

void runm_error_release(runm_error_t *err)
{
	if (err == NULL || *err == NULL)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}

const char *runm_error_msg(runm_error_t err)
{
	return err && err->msg ? err->msg : "unknown error";
}
