/* qmp.c - see qmp.h. */
#include "qmp.h"
#include "vm-backend.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void qmp_close(struct qmp *q)
{
	close_and_reset(&q->qmp_fd);
	q->qmp_ready = false;
	q->len = 0;
}

/* Give up on the connection after a timeout or garbage: the stream's state
 * is unknown (a late reply would be taken for the next command's). */
int qmp_fail(struct qmp *q)
{
	qmp_close(q);
	return -1;
}

/* Read the next QMP message (one JSON object per line) before deadline_ns. */
int qmp_read(struct qmp *q, uint64_t deadline_ns, json_object **out, runm_error_t *err)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd p = { .fd = q->qmp_fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (nl) {
			size_t llen = (size_t)(nl - q->buf) + 1;
			json_object *o;
			bool blank;
			*nl = '\0';
			blank = strspn(q->buf, " \r\t") == llen - 1;
			o = blank ? NULL : json_tokener_parse(q->buf);
			memmove(q->buf, q->buf + llen, q->len - llen);
			q->len -= llen;
			if (blank)
				continue;
			if (o == NULL) {
				runm_error_make(err, EPROTO, "QMP: unparsable message");
				return qmp_fail(q);
			}
			if (!json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				runm_error_make(err, EPROTO, "QMP: message is not an object");
				return qmp_fail(q);
			}
			*out = o;
			return 0;
		}
		if (q->len >= QMP_MAX_MSG) {
			runm_error_make(err, EPROTO, "QMP: message larger than %u bytes", QMP_MAX_MSG);
			return qmp_fail(q);
		}
		r = poll(&p, 1, vm_ms_left(deadline_ns));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			runm_error_make(err, errno, "QMP: poll");
			return qmp_fail(q);
		}
		if (r == 0) {
			runm_error_make(err, ETIMEDOUT, "QMP: no answer from the VMM");
			return qmp_fail(q);
		}
		if (q->cap - q->len < 4096) {
			q->cap = q->cap ? q->cap * 2 : 8192;
			q->buf = xrealloc(q->buf, q->cap);
		}
		n = read(q->qmp_fd, q->buf + q->len, q->cap - q->len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			runm_error_make(err, errno, "QMP: read");
			return qmp_fail(q);
		}
		if (n == 0) {
			runm_error_make(err, EPIPE, "QMP: connection closed (the VMM exited)");
			return qmp_fail(q);
		}
		q->len += (size_t)n;
	}
}

/* args: a JSON object (already encoded), or NULL. */
int qmp_send_args(struct qmp *q, const char *cmd, const char *args, runm_error_t *err)
{
	cleanup_free char *line = args ? xasprintf("{\"execute\":\"%s\",\"arguments\":%s}\n", cmd, args)
				       : xasprintf("{\"execute\":\"%s\"}\n", cmd);
	size_t len = strlen(line);
	/* MSG_DONTWAIT: a few dozen bytes always fit an idle socket buffer; if
	 * they do not, QEMU is wedged and blocking would hang us with it.
	 * MSG_NOSIGNAL: QEMU may have exited, that is an error, not a SIGPIPE. */
	ssize_t n = send(q->qmp_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		runm_error_make(err, errno, "QMP: send `%s`", cmd);
		return qmp_fail(q);
	}
	if ((size_t)n != len) {
		runm_error_make(err, EAGAIN, "QMP: short send of `%s`", cmd);
		return qmp_fail(q);
	}
	return 0;
}

int qmp_send(struct qmp *q, const char *cmd, runm_error_t *err)
{
	return qmp_send_args(q, cmd, NULL, err);
}

/* Wait for the reply to the command just sent, skipping events; its
 * "return" value in *ret (owned by the caller) unless ret is NULL. */
int qmp_wait_value(struct qmp *q, const char *cmd, uint64_t deadline_ns, json_object **ret,
			  runm_error_t *err)
{
	for (;;) {
		json_object *o = NULL, *v;
		if (qmp_read(q, deadline_ns, &o, err) < 0)
			return -1;
		if (json_object_object_get_ex(o, "return", &v)) {
			if (ret)
				*ret = json_object_get(v);
			json_object_put(o);
			return 0;
		}
		if (json_object_object_get_ex(o, "error", &v)) {
			json_object *desc = NULL;
			json_object_object_get_ex(v, "desc", &desc);
			/* desc comes from the VMM: bound it in the message. */
			runm_error_make(err, EIO, "QMP %s: %.200s", cmd,
					desc ? json_object_get_string(desc) : "error without description");
			json_object_put(o);
			return -1;
		}
		if (json_object_object_get_ex(o, "event", &v))
			log_debug("QMP event %.64s", json_object_get_string(v));
		json_object_put(o);
	}
}

int qmp_wait_return(struct qmp *q, const char *cmd, uint64_t deadline_ns, runm_error_t *err)
{
	return qmp_wait_value(q, cmd, deadline_ns, NULL, err);
}

/* Done lazily, on the first control operation: QEMU greets as soon as the
 * chardev is up, and the greeting simply waits in the socket until then. */
int qmp_handshake(struct qmp *q, uint64_t deadline_ns, runm_error_t *err)
{
	if (q->qmp_fd < 0)
		return runm_error_make(err, ENOTCONN, "QMP channel unusable after an earlier error");
	if (q->qmp_ready)
		return 0;
	for (;;) {
		json_object *o = NULL;
		bool greeting;
		if (qmp_read(q, deadline_ns, &o, err) < 0)
			return -1;
		greeting = json_object_object_get_ex(o, "QMP", NULL);
		json_object_put(o);
		if (greeting)
			break;
	}
	if (qmp_send(q, "qmp_capabilities", err) < 0 || qmp_wait_return(q, "qmp_capabilities", deadline_ns, err) < 0)
		return -1;
	q->qmp_ready = true;
	return 0;
}

/* Send cmd with args and wait for its return, skipping events. */
int qmp_call(struct qmp *q, const char *cmd, const char *args, uint64_t deadline_ns, runm_error_t *err)
{
	if (qmp_send_args(q, cmd, args, err) < 0)
		return -1;
	return qmp_wait_return(q, cmd, deadline_ns, err);
}

/* QMP getfd: hand QEMU fd under `name` (SCM_RIGHTS with the command). */
int qmp_getfd(struct qmp *q, int fd, const char *name, uint64_t deadline_ns, runm_error_t *err)
{
	cleanup_free char *line = xasprintf("{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"%s\"}}\n", name);
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = line, .iov_len = strlen(line) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	n = sendmsg(q->qmp_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 || (size_t)n != iov.iov_len) {
		runm_error_make(err, n < 0 ? errno : EAGAIN, "QMP: send getfd");
		return qmp_fail(q);
	}
	return qmp_wait_return(q, "getfd", deadline_ns, err);
}

