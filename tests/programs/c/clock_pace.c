/*
 * clock_pace: prints the wall clock (CLOCK_REALTIME, as seconds with nanoseconds) every
 * half second, COUNT times (the only argument, default 10), then "done". The host
 * compares each line with its own clock when the line arrives (tests/tests/clock.rs);
 * it is not a differential test, since every value is run-dependent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 10;
    struct timespec half = {0, 500000000};
    for (int i = 0; i < count; i++) {
        struct timespec now;
        if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
            perror("clock_gettime");
            return 1;
        }
        printf("wall %lld.%09ld\n", (long long)now.tv_sec, now.tv_nsec);
        fflush(stdout);
        nanosleep(&half, NULL);
    }
    printf("done\n");
    return 0;
}
