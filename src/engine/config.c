/* config.c - see config.h. */
#include "engine/config.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX (64u << 10)

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

/* A "quoted" string without escapes (paths), or NULL. */
static char *string_value(char *v)
{
	size_t n = strlen(v);
	if (n < 2 || v[0] != '"' || v[n - 1] != '"' || memchr(v + 1, '"', n - 2) || memchr(v + 1, '\\', n - 2))
		return NULL;
	return xstrndup(v + 1, n - 2);
}

static bool uint_value(const char *v, unsigned max, unsigned *out)
{
	char *end;
	unsigned long n;
	if (*v < '0' || *v > '9')
		return false;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end != '\0' || n == 0 || n > max)
		return false;
	*out = (unsigned)n;
	return true;
}

int config_parse(const char *text, size_t len, const char *origin, struct runm_config *out, runm_error_t *err)
{
	cleanup_free char *buf = xstrndup(text, len);
	char *line = buf, *next;
	unsigned lineno = 0;

	memset(out, 0, sizeof(*out));
	if (strlen(buf) != len) {
		config_release(out);
		return runm_error_make(err, 0, "%s: contains a NUL byte", origin);
	}
	for (; line != NULL; line = next) {
		char *eq, *key, *val, *hash;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		/* A comment starts at a '#' outside quotes. */
		hash = NULL;
		for (char *p = line, quoted = 0; *p && hash == NULL; p++) {
			if (*p == '"')
				quoted = (char)!quoted;
			else if (*p == '#' && !quoted)
				hash = p;
		}
		if (hash)
			*hash = '\0';
		key = trim(line, line + strlen(line));
		if (*key == '\0' || (*key == '[' && key[strlen(key) - 1] == ']')) /* blank, or a section header */
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			runm_error_make(err, 0, "%s:%u: expected `key = value`", origin, lineno);
			goto fail;
		}
		val = trim(eq + 1, eq + 1 + strlen(eq + 1));
		key = trim(key, eq);
		if (strcmp(key, "kernel") == 0 || strcmp(key, "initrd") == 0) {
			char **dst = key[0] == 'k' ? &out->kernel : &out->initrd;
			char *s = string_value(val);
			if (s == NULL || s[0] != '/') {
				free(s);
				runm_error_make(err, 0, "%s:%u: %s: expected an absolute path in quotes", origin, lineno, key);
				goto fail;
			}
			free(*dst);
			*dst = s;
		} else if (strcmp(key, "accel") == 0) {
			char *s = string_value(val);
			if (s == NULL || (strcmp(s, "auto") != 0 && strcmp(s, "kvm") != 0 && strcmp(s, "tcg") != 0 &&
					  strcmp(s, "hvf") != 0)) {
				free(s);
				runm_error_make(err, 0, "%s:%u: %s: expected \"auto\", \"kvm\", \"tcg\" or \"hvf\"", origin,
						lineno, key);
				goto fail;
			}
			free(out->accel);
			out->accel = s;
			if (strcmp(s, "auto") == 0) /* the same as not saying */
				out->accel = NULL, free(s);
		} else if (strcmp(key, "network") == 0) {
			char *s = string_value(val);
			if (s == NULL || (strcmp(s, "auto") != 0 && strcmp(s, "passt") != 0 && strcmp(s, "slirp") != 0)) {
				free(s);
				runm_error_make(err, 0, "%s:%u: %s: expected \"auto\", \"passt\" or \"slirp\"", origin,
						lineno, key);
				goto fail;
			}
			free(out->network);
			out->network = s;
		} else if (strcmp(key, "warm_start") == 0) {
			if (strcmp(val, "true") != 0 && strcmp(val, "false") != 0) {
				runm_error_make(err, 0, "%s:%u: %s: expected true or false", origin, lineno, key);
				goto fail;
			}
			out->warm_start = val[0] == 't' ? CONFIG_ON : CONFIG_OFF;
		} else if (strcmp(key, "default_memory_mib") == 0) {
			if (!uint_value(val, 1u << 20, &out->default_mem_mib)) {
				runm_error_make(err, 0, "%s:%u: %s: expected 1..1048576", origin, lineno, key);
				goto fail;
			}
		} else if (strcmp(key, "default_vcpus") == 0) {
			if (!uint_value(val, 256, &out->default_vcpus)) {
				runm_error_make(err, 0, "%s:%u: %s: expected 1..256", origin, lineno, key);
				goto fail;
			}
		} else {
			runm_error_make(err, 0, "%s:%u: unknown key `%s`", origin, lineno, key);
			goto fail;
		}
	}
	/* One without the other would boot a mismatched pair (or silently
	 * ignore the one given). */
	if ((out->kernel == NULL) != (out->initrd == NULL)) {
		runm_error_make(err, 0, "%s: kernel and initrd go together: give both or neither", origin);
		goto fail;
	}
	return 0;
fail:
	config_release(out);
	return -1;
}

int config_load(const char *path, bool optional, struct runm_config *out, runm_error_t *err)
{
	cleanup_free char *text = NULL;
	size_t len;
	cleanup_error runm_error_t rerr = NULL;

	memset(out, 0, sizeof(*out));
	if (read_file_at(AT_FDCWD, path, CONFIG_MAX, &text, &len, &rerr) < 0) {
		if (optional && rerr->status == ENOENT)
			return 0;
		*err = steal_ptr(&rerr);
		return runm_error_wrap(err, "runm config");
	}
	return config_parse(text, len, path, out, err);
}

void config_release(struct runm_config *c)
{
	free(c->kernel);
	free(c->initrd);
	free(c->accel);
	free(c->network);
	memset(c, 0, sizeof(*c));
}
