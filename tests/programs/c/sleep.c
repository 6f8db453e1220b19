/*
 * sleep: blocks in nanosleep for the number of seconds given as argv[1] (a decimal,
 * default 5), resuming after interruptions, then prints "slept: ok". The idle-CPU
 * benchmark (scripts/bench-idle.sh) runs it to see what an idle guest costs the host.
 */
#include "common.h"

#include <time.h>

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 5.0;
    if (!(seconds >= 0.0 && seconds < 1e6)) {
        printf("usage: sleep [seconds], with 0 <= seconds < 1e6\n");
        return 2;
    }
    struct timespec left = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR) {
            printf("nanosleep: %s\n", errno_name(errno));
            return 1;
        }
    }
    printf("slept: ok\n");
    return 0;
}
