// A header-only test runner: CHECK* macros end the test function at the first
// failure and print file:line; unit_main prints "N passed, M failed".
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

typedef void (*unit_fn_t)(void);

static const char *unit_current;
static int unit_failed_now;

#define UNIT_FAIL(...) do { \
        printf("%s:%d: %s: ", __FILE__, __LINE__, unit_current); \
        printf(__VA_ARGS__); \
        printf("\n"); \
        unit_failed_now = 1; \
        return; \
} while (0)

#define CHECK(c) do { \
        if (!(c)) { \
            UNIT_FAIL("CHECK(%s)", #c); \
        } \
} while (0)

#define CHECK_EQ(a, b) do { \
        long long a_ = (long long)(a), b_ = (long long)(b); \
        if (a_ != b_) { \
            UNIT_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_); \
        } \
} while (0)

#define CHECK_STR(a, b) do { \
        const char *a_ = (a), *b_ = (b); \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
            UNIT_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
        } \
} while (0)

typedef struct {
    unit_fn_t fn;
    const char *name;
} unit_test_t;

#define UNIT_TEST(fn) { fn, #fn }

static int unit_main(const unit_test_t *tests, size_t n) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        unit_current = tests[i].name;
        unit_failed_now = 0;
        tests[i].fn();
        if (unit_failed_now) {
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif // UNIT_H
