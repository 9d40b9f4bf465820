/* harness.h - the unit test harness: TEST(name) functions registered in a
 * table, CHECK() that records a failure and returns from the test, and a
 * main that runs all (or those named on the command line) and prints one
 * "N passed, N failed" line. Each test file is one program. */
#ifndef RUNM_TEST_HARNESS_H
#define RUNM_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(int *failed);
};

#define TEST(name)                                                                   \
	static void test_##name(int *failed_);                                          \
	static const struct test_case tc_##name                                         \
		__attribute__((used, section("runm_tests"), aligned(sizeof(void *)))) = { \
			#name, test_##name                                              \
		};                                                                      \
	static void test_##name(int *failed_)

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			*failed_ = 1;                                                        \
			return;                                                              \
		}                                                                            \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                          \
	do {                                                                                        \
		long long a_ = (long long)(a), b_ = (long long)(b);                                 \
		if (a_ != b_) {                                                                     \
			fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, \
				#a, #b, a_, b_);                                                    \
			*failed_ = 1;                                                               \
			return;                                                                     \
		}                                                                                   \
	} while (0)

#define CHECK_STR(a, b)                                                                          \
	do {                                                                                     \
		const char *a_ = (a), *b_ = (b);                                                 \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                           \
			fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
				__LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");        \
			*failed_ = 1;                                                            \
			return;                                                                  \
		}                                                                                \
	} while (0)

extern const struct test_case __start_runm_tests[], __stop_runm_tests[];

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	for (const struct test_case *t = __start_runm_tests; t < __stop_runm_tests; t++) {
		int f = 0, want = argc < 2;
		for (int i = 1; i < argc; i++)
			want |= strcmp(argv[i], t->name) == 0;
		if (!want)
			continue;
		t->fn(&f);
		fprintf(stderr, "%s %s\n", f ? "FAIL" : "ok  ", t->name);
		f ? failed++ : passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif
