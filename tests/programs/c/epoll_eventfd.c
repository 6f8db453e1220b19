/* epoll_eventfd: epoll (level- and edge-triggered, EPOLLONESHOT, HUP/ERR, nesting,
 * errors, timeouts, signals, threads) on pipes and eventfds, and eventfd itself.
 *
 * Every line is fixed: no timings, addresses or inode numbers; the output must be the
 * same natively and under Skiff. Exit status 1 if any check fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif
#ifndef EPOLLEXCLUSIVE
#define EPOLLEXCLUSIVE (1u << 28)
#endif

static int failed;

static void check(const char *label, int ok) {
    printf("%s: %s\n", label, ok ? "yes" : "no");
    if (!ok)
        failed++;
}

/* "ok" or the errno name of a failed call. */
static const char *err(long r) {
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EEXIST: return "EEXIST";
    case EFAULT: return "EFAULT";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case ELOOP: return "ELOOP";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case ESPIPE: return "ESPIPE";
    default: return "other";
    }
}

static void show_events(const char *label, struct epoll_event *ev, int n) {
    printf("%s: %d", label, n);
    for (int i = 0; i < n; i++) {
        printf(" [data=%llu", (unsigned long long)ev[i].data.u64);
        uint32_t e = ev[i].events;
        if (e & EPOLLIN) printf(" IN");
        if (e & EPOLLOUT) printf(" OUT");
        if (e & EPOLLRDNORM) printf(" RDNORM");
        if (e & EPOLLWRNORM) printf(" WRNORM");
        if (e & EPOLLHUP) printf(" HUP");
        if (e & EPOLLERR) printf(" ERR");
        if (e & EPOLLRDHUP) printf(" RDHUP");
        if (e & ~(EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
            printf(" other=%#x", e);
        printf("]");
    }
    printf("\n");
}

/* epoll_wait with timeout 0, printing what it reports. */
static int poll_now(int ep, const char *label) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, 0);
    if (n < 0) {
        printf("%s: %s\n", label, err(n));
        return n;
    }
    show_events(label, ev, n);
    return n;
}

static int add(int ep, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void drain(int fd) {
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static long ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void eventfd_basics(void) {
    printf("== eventfd\n");
    uint64_t v;
    int fd = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
    check("eventfd created", fd >= 0);
    printf("F_GETFL: %#x\n", fcntl(fd, F_GETFL));
    check("FD_CLOEXEC set", fcntl(fd, F_GETFD) == FD_CLOEXEC);
    struct stat st;
    fstat(fd, &st);
    printf("st_mode %o nlink %ld size %ld\n", (unsigned)st.st_mode, (long)st.st_nlink, (long)st.st_size);
    char path[64], link[64] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    readlink(path, link, sizeof link - 1);
    printf("link: %s\n", link);

    printf("read: %s", err(read(fd, &v, 8)));
    printf(" value %llu\n", (unsigned long long)v);
    printf("read empty: %s\n", err(read(fd, &v, 8)));
    printf("short read: %s\n", err(read(fd, &v, 4)));
    v = 5;
    printf("write 5: %s\n", err(write(fd, &v, 8)));
    printf("short write: %s\n", err(write(fd, &v, 7)));
    v = UINT64_MAX;
    printf("write UINT64_MAX: %s\n", err(write(fd, &v, 8)));
    v = UINT64_MAX - 1 - 5;
    printf("write to the limit: %s\n", err(write(fd, &v, 8)));
    v = 1;
    printf("write past the limit: %s\n", err(write(fd, &v, 8)));
    v = 0;
    printf("write 0 at the limit: %s\n", err(write(fd, &v, 8)));
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    poll(&p, 1, 0);
    printf("poll at the limit: %#x\n", p.revents);
    char big[16] = {0};
    printf("read with 16 bytes: %ld", (long)read(fd, big, sizeof big));
    memcpy(&v, big, 8);
    printf(" value %#llx\n", (unsigned long long)v);
    p.revents = 0;
    poll(&p, 1, 0);
    printf("poll when zero: %#x\n", p.revents);
    printf("pread: %s\n", err(pread(fd, &v, 8, 0)));
    close(fd);

    fd = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 3; i++) {
        v = 0;
        long r = read(fd, &v, 8);
        printf("semaphore read %d: %s value %llu\n", i, err(r), (unsigned long long)v);
    }
    close(fd);
    errno = 0;
    printf("eventfd bad flags: %s\n", err(eventfd(0, 0x10)));
    printf("eventfd no flags F_GETFL: %#x\n", fcntl(fd = eventfd(0, 0), F_GETFL));
    close(fd);
}

static void level_triggered(void) {
    printf("== level-triggered pipe\n");
    int p[2];
    pipe2(p, O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    check("epoll fd has FD_CLOEXEC", fcntl(ep, F_GETFD) == FD_CLOEXEC);
    printf("epoll F_GETFL: %#x\n", fcntl(ep, F_GETFL));
    char path[64], link[64] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", ep);
    readlink(path, link, sizeof link - 1);
    printf("epoll link: %s\n", link);
    printf("pipe F_GETFL: %#x %#x\n", fcntl(p[0], F_GETFL), fcntl(p[1], F_GETFL));
    memset(link, 0, sizeof link);
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    readlink(path, link, sizeof link - 1);
    check("pipe link is pipe:[...]", strncmp(link, "pipe:[", 6) == 0);

    add(ep, p[0], EPOLLIN, 10);
    poll_now(ep, "empty");
    write(p[1], "abc", 3);
    poll_now(ep, "after write");
    poll_now(ep, "again");
    char c;
    read(p[0], &c, 1);
    poll_now(ep, "after partial read");
    drain(p[0]);
    poll_now(ep, "after draining");
    add(ep, p[1], EPOLLOUT | EPOLLIN, 11);
    poll_now(ep, "write end added");
    mod(ep, p[0], EPOLLIN | EPOLLRDNORM, 12);
    write(p[1], "x", 1);
    poll_now(ep, "both, after MOD");
    close(p[1]);
    poll_now(ep, "writer closed");
    drain(p[0]);
    poll_now(ep, "writer closed, drained");
    close(p[0]);
    poll_now(ep, "all closed");
    close(ep);
}

static void edge_triggered(void) {
    printf("== edge-triggered pipe\n");
    int p[2];
    pipe2(p, O_NONBLOCK);
    int ep = epoll_create(1);
    add(ep, p[0], EPOLLIN | EPOLLET, 20);
    poll_now(ep, "empty");
    write(p[1], "abc", 3);
    poll_now(ep, "after write");
    poll_now(ep, "no new edge");
    char c;
    read(p[0], &c, 1);
    poll_now(ep, "after partial read");
    write(p[1], "d", 1);
    poll_now(ep, "write into a non-empty pipe");
    drain(p[0]);

    printf("-- write end\n");
    add(ep, p[1], EPOLLOUT | EPOLLET, 21);
    poll_now(ep, "write end added");
    poll_now(ep, "no new edge");
    char chunk[4096];
    memset(chunk, 'w', sizeof chunk);
    long total = 0, r;
    while ((r = write(p[1], chunk, sizeof chunk)) > 0)
        total += r;
    printf("filled with %ld bytes, then %s\n", total, err(r));
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 0);
    printf("full pipe: %d events, first data %llu\n", n, n > 0 ? (unsigned long long)ev[0].data.u64 : 0ULL);
    drain(p[0]);
    n = epoll_wait(ep, ev, 4, 0);
    int saw_out = 0;
    for (int i = 0; i < n; i++)
        if (ev[i].data.u64 == 21 && (ev[i].events & EPOLLOUT))
            saw_out = 1;
    check("emptying a full pipe is an EPOLLOUT edge", saw_out);
    poll_now(ep, "then quiet");
    close(p[1]);
    poll_now(ep, "writer closed");
    close(p[0]);
    close(ep);
}

static void oneshot(void) {
    printf("== oneshot\n");
    int p[2];
    pipe2(p, O_NONBLOCK);
    int ep = epoll_create1(0);
    add(ep, p[0], EPOLLIN | EPOLLONESHOT, 30);
    write(p[1], "a", 1);
    poll_now(ep, "first");
    write(p[1], "b", 1);
    poll_now(ep, "disarmed");
    mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 31);
    poll_now(ep, "rearmed");
    poll_now(ep, "disarmed again");
    close(p[1]);
    poll_now(ep, "writer closed while disarmed");
    mod(ep, p[0], EPOLLIN | EPOLLET | EPOLLONESHOT, 32);
    poll_now(ep, "rearmed edge-triggered");
    close(p[0]);
    close(ep);
}

static void eventfd_epoll(void) {
    printf("== eventfd with epoll\n");
    int fd = eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE);
    int ep = epoll_create1(0);
    add(ep, fd, EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM, 40);
    poll_now(ep, "level, zero");
    uint64_t v = 3;
    write(fd, &v, 8);
    poll_now(ep, "level, three");
    mod(ep, fd, EPOLLIN | EPOLLET, 41);
    poll_now(ep, "edge after MOD");
    poll_now(ep, "no new edge");
    read(fd, &v, 8);
    poll_now(ep, "a read is no input edge");
    v = 0;
    write(fd, &v, 8);
    poll_now(ep, "a write of 0 is an edge");
    mod(ep, fd, EPOLLIN | EPOLLOUT | EPOLLET, 42);
    poll_now(ep, "both directions");
    read(fd, &v, 8);
    poll_now(ep, "a read is an output edge");
    close(fd);
    close(ep);
}

static void errors(void) {
    printf("== errors\n");
    int p[2];
    pipe(p);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    struct epoll_event out[4];
    printf("epoll_create(0): %s\n", err(syscall(SYS_epoll_create, 0)));
    printf("epoll_create1(bad): %s\n", err(epoll_create1(1)));
    printf("ADD: %s\n", err(add(ep, p[0], EPOLLIN, 1)));
    printf("ADD twice: %s\n", err(add(ep, p[0], EPOLLIN, 1)));
    printf("MOD unknown: %s\n", err(mod(ep, p[1], EPOLLOUT, 1)));
    printf("DEL unknown: %s\n", err(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL)));
    printf("bad op: %s\n", err(epoll_ctl(ep, 9, p[1], &ev)));
    printf("itself: %s\n", err(add(ep, ep, EPOLLIN, 1)));
    printf("not an epoll: %s\n", err(add(p[0], p[1], EPOLLOUT, 1)));
    printf("bad epfd: %s\n", err(add(99, p[1], EPOLLOUT, 1)));
    printf("bad fd: %s\n", err(add(ep, 99, EPOLLOUT, 1)));
    printf("bad event pointer: %s\n", err(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], (void *)8)));
    int null = open("/dev/null", O_RDWR);
    printf("/dev/null: %s\n", err(add(ep, null, EPOLLIN, 1)));
    close(null);
    int file = open("/tmp/epoll-regular", O_CREAT | O_RDWR | O_TRUNC, 0600);
    printf("regular file: %s\n", err(add(ep, file, EPOLLIN, 1)));
    close(file);
    unlink("/tmp/epoll-regular");
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    printf("directory: %s\n", err(add(ep, dir, EPOLLIN, 1)));
    close(dir);
    printf("EXCLUSIVE with RDHUP: %s\n", err(add(ep, p[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLRDHUP, 1)));
    printf("EXCLUSIVE on MOD: %s\n", err(mod(ep, p[0], EPOLLIN | EPOLLEXCLUSIVE, 1)));
    printf("EXCLUSIVE ADD: %s\n", err(add(ep, p[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLET, 1)));
    printf("MOD of an exclusive one: %s\n", err(mod(ep, p[1], EPOLLOUT, 1)));
    printf("DEL of an exclusive one: %s\n", err(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL)));
    printf("maxevents 0: %s\n", err(epoll_wait(ep, out, 0, 0)));
    int minus_one = -1;
    printf("maxevents -1: %s\n", err(syscall(SYS_epoll_wait, ep, out, minus_one, 0)));
    printf("wait on a pipe: %s\n", err(epoll_wait(p[0], out, 4, 0)));
    printf("wait on a bad fd: %s\n", err(epoll_wait(99, out, 4, 0)));
    printf("read epoll fd: %s\n", err(read(ep, out, 8)));
    printf("write epoll fd: %s\n", err(write(ep, out, 8)));
    sigset_t set;
    sigemptyset(&set);
    printf("pwait bad sigsetsize: %s\n", err(syscall(SYS_epoll_pwait, ep, out, 4, 0, &set, 4)));
    struct timespec bad = {0, 1000000000};
    printf("pwait2 bad timespec: %s\n", err(syscall(SYS_epoll_pwait2, ep, out, 4, &bad, NULL, 8)));

    int inner = epoll_create1(0), outer = epoll_create1(0);
    printf("nest: %s\n", err(add(outer, inner, EPOLLIN, 1)));
    printf("cycle: %s\n", err(add(inner, outer, EPOLLIN, 1)));
    printf("EXCLUSIVE on an epoll: %s\n", err(add(ep, inner, EPOLLIN | EPOLLEXCLUSIVE, 1)));
    int chain[6];
    chain[0] = epoll_create1(0);
    for (int i = 1; i < 6; i++) {
        chain[i] = epoll_create1(0);
        int r = add(chain[i], chain[i - 1], EPOLLIN, 1);
        printf("chain level %d: %s\n", i, err(r));
    }
    for (int i = 0; i < 6; i++)
        close(chain[i]);
    close(inner);
    close(outer);
    close(p[0]);
    close(p[1]);
    close(ep);
}

static void closing(void) {
    printf("== closing\n");
    int p[2];
    pipe2(p, O_NONBLOCK);
    int ep = epoll_create1(0);
    add(ep, p[0], EPOLLIN, 50);
    int copy = dup(p[0]);
    close(p[0]);
    write(p[1], "x", 1);
    poll_now(ep, "closed but dup'd: still registered");
    printf("DEL by the closed number: %s\n", err(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL)));
    printf("DEL by the copy: %s\n", err(epoll_ctl(ep, EPOLL_CTL_DEL, copy, NULL)));
    printf("ADD by the copy: %s\n", err(add(ep, copy, EPOLLIN, 51)));
    poll_now(ep, "copy registered");
    close(copy);
    poll_now(ep, "file closed everywhere");
    int q[2];
    pipe2(q, O_NONBLOCK);
    printf("ADD a new file under an old number: %s\n", err(add(ep, q[0], EPOLLIN, 52)));
    close(q[0]);
    close(q[1]);
    close(p[1]);
    close(ep);
}

static void ordering_and_nesting(void) {
    printf("== maxevents and nesting\n");
    int a[2], b[2];
    pipe2(a, O_NONBLOCK);
    pipe2(b, O_NONBLOCK);
    write(a[1], "a", 1);
    write(b[1], "b", 1);
    int ep = epoll_create1(0);
    add(ep, a[0], EPOLLIN, 60);
    add(ep, b[0], EPOLLIN, 61);
    struct epoll_event ev[2];
    int n;
    for (int i = 0; i < 4; i++) {
        n = epoll_wait(ep, ev, 1, 0);
        char label[32];
        snprintf(label, sizeof label, "maxevents 1, call %d", i);
        show_events(label, ev, n);
    }

    int outer = epoll_create1(0);
    add(outer, ep, EPOLLIN, 62);
    poll_now(outer, "outer sees inner ready");
    struct pollfd pf = {.fd = ep, .events = POLLIN | POLLOUT};
    n = poll(&pf, 1, 0);
    printf("poll on the epoll fd: %d revents %#x\n", n, pf.revents);
    drain(a[0]);
    drain(b[0]);
    poll_now(outer, "inner quiet");
    pf.revents = 0;
    n = poll(&pf, 1, 0);
    printf("poll on the quiet epoll fd: %d revents %#x\n", n, pf.revents);
    write(b[1], "b", 1);
    poll_now(outer, "inner ready again");
    close(outer);
    close(ep);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

static int wake_fd;
static void *writer_thread(void *arg) {
    (void)arg;
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    uint64_t v = 7;
    write(wake_fd, &v, 8);
    return NULL;
}

static void on_alarm(int sig) {
    (void)sig;
}

static void waiting(void) {
    printf("== waiting\n");
    int ep = epoll_create1(0);
    int p[2];
    pipe2(p, O_NONBLOCK);
    add(ep, p[0], EPOLLIN, 70);
    struct epoll_event ev[4];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = epoll_wait(ep, ev, 4, 50);
    long waited = ms_since(&t0);
    printf("timeout: %d\n", n);
    check("waited about 50ms", waited >= 45 && waited < 2000);

    struct timespec ts = {0, 30 * 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    n = syscall(SYS_epoll_pwait2, ep, ev, 4, &ts, NULL, 8);
    waited = ms_since(&t0);
    printf("pwait2 timeout: %d\n", n);
    check("pwait2 waited about 30ms", waited >= 25 && waited < 2000);

    wake_fd = eventfd(0, 0);
    add(ep, wake_fd, EPOLLIN | EPOLLET, 71);
    pthread_t t;
    pthread_create(&t, NULL, writer_thread, NULL);
    n = epoll_wait(ep, ev, 4, -1);
    show_events("woken by another thread", ev, n);
    pthread_join(t, NULL);
    uint64_t v;
    printf("blocking read: %ld", (long)read(wake_fd, &v, 8));
    printf(" value %llu\n", (unsigned long long)v);

    /* A handler interrupts the wait with EINTR even with SA_RESTART. */
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    n = epoll_wait(ep, ev, 4, -1);
    printf("signal during epoll_wait: %s\n", err(n));

    /* epoll_pwait's mask blocks the signal for the wait; it arrives afterwards. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    setitimer(ITIMER_REAL, &it, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    n = epoll_pwait(ep, ev, 4, 60, &block);
    printf("epoll_pwait with SIGALRM blocked: %d\n", n);
    check("pwait waited its whole timeout", ms_since(&t0) >= 55);
    /* And a mask that unblocks it lets it interrupt. */
    sigprocmask(SIG_BLOCK, &block, &old);
    setitimer(ITIMER_REAL, &it, NULL);
    sigset_t none;
    sigemptyset(&none);
    n = epoll_pwait(ep, ev, 4, 2000, &none);
    printf("epoll_pwait unblocking SIGALRM: %s\n", err(n));
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    check("mask restored after epoll_pwait", sigismember(&now, SIGALRM));
    sigprocmask(SIG_SETMASK, &old, NULL);

    close(wake_fd);
    close(p[0]);
    close(p[1]);
    close(ep);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    eventfd_basics();
    level_triggered();
    edge_triggered();
    oneshot();
    eventfd_epoll();
    errors();
    closing();
    ordering_and_nesting();
    waiting();
    if (failed) {
        printf("epoll_eventfd: %d failed checks\n", failed);
        return 1;
    }
    printf("epoll_eventfd: done\n");
    return 0;
}
