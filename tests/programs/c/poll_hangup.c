/* poll_hangup: what poll and select report for pipes whose other end is gone.
 *
 * poll reports POLLHUP for a read end with no writer left (with POLLIN only while
 * data is still queued) and POLLERR for a write end with no reader, whether or not
 * they were asked for; select counts both as ready. Skiff once reported a plain
 * POLLIN for a hung-up pipe. Every line is fixed; exit status 1 if a call fails.
 */
#include <poll.h>
#include <stdio.h>
#include <sys/select.h>
#include <unistd.h>

static int failed;

static void need(const char *what, int ok) {
    if (!ok) {
        printf("FATAL: %s failed\n", what);
        failed = 1;
    }
}

static void show(const char *label, struct pollfd *f) {
    need("poll", poll(f, 1, 0) >= 0);
    printf("%s: revents=%#x\n", label, f->revents);
}

int main(void) {
    int p[2], q[2];
    char c;
    need("pipe", pipe(p) == 0 && pipe(q) == 0);
    struct pollfd r = {p[0], POLLIN, 0}, w = {p[1], POLLOUT, 0};
    show("empty pipe, read end", &r);
    show("empty pipe, write end", &w);
    need("write", write(p[1], "x", 1) == 1);
    show("data queued, read end", &r);
    need("close", close(p[1]) == 0);
    show("data queued, writer gone", &r);
    struct pollfd nothing = {p[0], 0, 0};
    show("writer gone, no events asked", &nothing);
    need("read", read(p[0], &c, 1) == 1);
    show("drained, writer gone", &r);

    fd_set set;
    struct timeval now = {0, 0};
    FD_ZERO(&set);
    FD_SET(p[0], &set);
    int n = select(p[0] + 1, &set, NULL, NULL, &now);
    printf("select on a hung-up read end: %d ready, in set: %d\n", n, FD_ISSET(p[0], &set));

    need("close", close(q[0]) == 0);
    struct pollfd orphan = {q[1], POLLOUT, 0};
    show("reader gone, write end", &orphan);
    FD_ZERO(&set);
    FD_SET(q[1], &set);
    now.tv_sec = 0;
    now.tv_usec = 0;
    n = select(q[1] + 1, NULL, &set, NULL, &now);
    printf("select on an orphaned write end: %d ready, in set: %d\n", n, FD_ISSET(q[1], &set));
    return failed;
}
