/*
 * time: clocks and sleeping. Prints booleans only, since every value is run-dependent:
 * CLOCK_MONOTONIC never goes backwards, nanosleep(50 ms) takes at least 50 ms on the
 * monotonic clock, gettimeofday agrees with CLOCK_REALTIME, and realtime is plausible.
 */
#include "common.h"

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static int64_t ns_of(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(void)
{
    struct timespec prev, now;
    outcome("clock_gettime CLOCK_MONOTONIC", clock_gettime(CLOCK_MONOTONIC, &prev));
    int monotonic = 1, nsec_in_range = 1;
    for (int i = 0; i < 1000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ns_of(now) < ns_of(prev))
            monotonic = 0;
        if (now.tv_nsec < 0 || now.tv_nsec >= 1000000000)
            nsec_in_range = 0;
        prev = now;
    }
    check("monotonic never decreases over 1000 reads", monotonic);
    check("tv_nsec always in [0, 1e9)", nsec_in_range);

    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    /* Some work between reads: the clock must advance, not stand still. */
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < 2000000; i++)
        sink += i;
    clock_gettime(CLOCK_MONOTONIC, &after);
    check("monotonic advances across busy work", ns_of(after) > ns_of(before));

    struct timespec request = {0, 50 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &before);
    outcome("nanosleep 50ms", nanosleep(&request, NULL));
    clock_gettime(CLOCK_MONOTONIC, &after);
    check("nanosleep 50ms took at least 50ms", ns_of(after) - ns_of(before) >= 50000000);
    check("nanosleep 50ms took under 5s", ns_of(after) - ns_of(before) < 5000000000ll);

    struct timespec bad_request = {0, 1000000000};
    outcome("nanosleep tv_nsec 1e9", nanosleep(&bad_request, NULL));
    struct timespec negative = {-1, 0};
    outcome("nanosleep negative", nanosleep(&negative, NULL));

    clock_gettime(CLOCK_MONOTONIC, &before);
    /* clock_nanosleep returns the error number instead of setting errno. */
    int sleep_rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){0, 20000000}, NULL);
    printf("clock_nanosleep relative 20ms: %s\n", sleep_rc ? errno_name(sleep_rc) : "ok");
    clock_gettime(CLOCK_MONOTONIC, &after);
    check("clock_nanosleep 20ms took at least 20ms", ns_of(after) - ns_of(before) >= 20000000);

    struct timespec realtime;
    struct timeval tv;
    outcome("clock_gettime CLOCK_REALTIME", clock_gettime(CLOCK_REALTIME, &realtime));
    outcome("gettimeofday", gettimeofday(&tv, NULL));
    int64_t real_us = (int64_t)realtime.tv_sec * 1000000 + realtime.tv_nsec / 1000;
    int64_t tod_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    int64_t diff = tod_us - real_us;
    check("gettimeofday within 1s of CLOCK_REALTIME", diff >= 0 && diff < 1000000);
    check("tv_usec in [0, 1e6)", tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    /* 2020-01-01T00:00:00Z: a realtime clock before that was never set. */
    check("realtime after 2020", realtime.tv_sec > 1577836800);
    time_t t = time(NULL);
    check("time() within 2s of CLOCK_REALTIME",
          t >= realtime.tv_sec && t - realtime.tv_sec <= 2);

    struct timespec res;
    outcome("clock_getres CLOCK_MONOTONIC", clock_getres(CLOCK_MONOTONIC, &res));
    check("monotonic resolution at most 1ms", res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000);
    outcome("clock_gettime invalid clock", clock_gettime((clockid_t)12345, &now));
    return 0;
}
