/* stream.c - a connection's table of streams in flight (hashed by id) and
 * the accessors of ttrpc.h that work on either side's streams. */
#include "ttrpc-internal.h"

#include "common/util.h"

#include <stdlib.h>
#include <string.h>

struct ttrpc_stream *tt_stream_new(struct ttrpc_conn *c, uint32_t id, bool client)
{
	struct ttrpc_stream *s = xzalloc(sizeof(*s));
	s->conn = c;
	s->id = id;
	s->client = client;
	return s;
}

static struct ttrpc_stream **bucket(struct ttrpc_conn *c, uint32_t id)
{
	/* Ids go up by 2 on one side: drop the parity bit so buckets fill evenly. */
	return &c->table[(id >> 1) & (TT_BUCKETS - 1)];
}

void tt_stream_add(struct ttrpc_conn *c, struct ttrpc_stream *s)
{
	struct ttrpc_stream **b = bucket(c, s->id);
	s->hprev = NULL;
	s->hnext = *b;
	if (*b)
		(*b)->hprev = s;
	*b = s;
	s->in_table = true;
	c->n_streams++;
}

struct ttrpc_stream *tt_stream_find(struct ttrpc_conn *c, uint32_t id)
{
	for (struct ttrpc_stream *s = *bucket(c, id); s; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

void tt_stream_remove(struct ttrpc_stream *s)
{
	struct ttrpc_conn *c = s->conn;
	if (!s->in_table)
		return;
	if (s->hprev)
		s->hprev->hnext = s->hnext;
	else
		*bucket(c, s->id) = s->hnext;
	if (s->hnext)
		s->hnext->hprev = s->hprev;
	s->hnext = s->hprev = NULL;
	s->in_table = false;
	c->n_streams--;
}

struct ttrpc_stream *tt_stream_pop_any(struct ttrpc_conn *c)
{
	if (c->n_streams == 0)
		return NULL;
	for (size_t i = 0; i < TT_BUCKETS; i++) {
		struct ttrpc_stream *s = c->table[i];
		if (s) {
			tt_stream_remove(s);
			return s;
		}
	}
	return NULL;
}

void tt_stream_free(struct ttrpc_stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_md; i++) {
		free(s->md[i].key);
		free(s->md[i].value);
	}
	free(s->md);
	free(s);
}

void ttrpc_stream_on_cancel(struct ttrpc_stream *s, void (*cb)(struct ttrpc_stream *, void *), void *data)
{
	s->cancel_cb = cb;
	s->cancel_data = data;
}

const char *ttrpc_stream_metadata(const struct ttrpc_stream *s, const char *key)
{
	for (size_t i = 0; i < s->n_md; i++)
		if (strcmp(s->md[i].key, key) == 0)
			return s->md[i].value;
	return NULL;
}

void ttrpc_stream_on_data(struct ttrpc_stream *s, ttrpc_data_fn cb, void *ud)
{
	s->data_cb = cb;
	s->data_ud = ud;
}

int ttrpc_stream_send(struct ttrpc_stream *s, const void *data, size_t len, uint8_t flags)
{
	struct ttrpc_conn *c = s->conn;
	uint8_t *buf;

	if (c == NULL || c->closed || len > TTRPC_MAX_PAYLOAD)
		return -1;
	buf = tt_frame_alloc(len, s->id, TTRPC_DATA, flags);
	if (len)
		memcpy(buf + TTRPC_HEADER_LEN, data, len);
	tt_conn_queue(c, buf, TTRPC_HEADER_LEN + len);
	return 0;
}

struct ttrpc_conn *ttrpc_stream_conn(const struct ttrpc_stream *s)
{
	return s->conn && !s->conn->closed ? s->conn : NULL;
}

void ttrpc_stream_set_user(struct ttrpc_stream *s, void *user)
{
	s->user = user;
}

void *ttrpc_stream_user(const struct ttrpc_stream *s)
{
	return s->user;
}
