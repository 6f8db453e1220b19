/* timerfd_signalfd: timers and signals as descriptors.
 *
 * timerfd: clocks and flags, reads of the expiration count (blocking, non-blocking,
 * short buffers), one-shot, periodic and absolute settings, disarming, old values,
 * readiness through poll and epoll (level and edge). signalfd: masks, dequeue order
 * (thread before process, lowest first, real-time FIFO), the signalfd_siginfo fields,
 * changing the mask, per-thread pending signals, and waking a sleeper in read and
 * epoll_wait.
 *
 * Every line is fixed: timings only ever appear as "at least" checks, and pids are
 * compared with getpid() instead of printed. Exit status 1 if any check fails.
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
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#ifndef CLOCK_BOOTTIME_ALARM
#define CLOCK_BOOTTIME_ALARM 9
#endif
#ifndef CLOCK_REALTIME_ALARM
#define CLOCK_REALTIME_ALARM 8
#endif
#ifndef TFD_TIMER_CANCEL_ON_SET
#define TFD_TIMER_CANCEL_ON_SET (1 << 1)
#endif

#define MS 1000000L

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * MS};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static uint64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct itimerspec spec(long value_ns, long interval_ns) {
    struct itimerspec its;
    its.it_value.tv_sec = value_ns / 1000000000L;
    its.it_value.tv_nsec = value_ns % 1000000000L;
    its.it_interval.tv_sec = interval_ns / 1000000000L;
    its.it_interval.tv_nsec = interval_ns % 1000000000L;
    return its;
}

static long ns_of(struct timespec ts) {
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* The expiration count, or -1 with errno. */
static long long read_ticks(int fd) {
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    if (n < 0)
        return -1;
    if (n != 8) {
        errno = EIO;
        return -1;
    }
    return (long long)v;
}

static void show_ticks(const char *label, int fd) {
    long long t = read_ticks(fd);
    if (t < 0)
        printf("%s: %s\n", label, errno_name(errno));
    else
        printf("%s: %lld\n", label, t);
}

static short revents(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLPRI, 0};
    if (poll(&p, 1, 0) < 0)
        return -1;
    return p.revents;
}

static void show_fd(const char *what, int fd) {
    struct stat st;
    char path[64], link[128];
    fstat(fd, &st);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n < 0 ? 0 : n] = 0;
    printf("%s: flags %#x mode %o link %s\n", what, fcntl(fd, F_GETFL), st.st_mode, link);
}

static void timerfd_basics(void) {
    static const struct {
        const char *name;
        clockid_t clock;
    } clocks[] = {
        {"REALTIME", CLOCK_REALTIME},         {"MONOTONIC", CLOCK_MONOTONIC},
        {"BOOTTIME", CLOCK_BOOTTIME},         {"REALTIME_ALARM", CLOCK_REALTIME_ALARM},
        {"BOOTTIME_ALARM", CLOCK_BOOTTIME_ALARM}, {"PROCESS_CPUTIME", CLOCK_PROCESS_CPUTIME_ID},
        {"MONOTONIC_RAW", CLOCK_MONOTONIC_RAW}, {"TAI", CLOCK_TAI},
        {"99", 99},
    };
    for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "timerfd_create %s", clocks[i].name);
        int fd = timerfd_create(clocks[i].clock, 0);
        outcome(label, fd);
        if (fd >= 0)
            close(fd);
    }
    expect_errno("timerfd_create bad flags", timerfd_create(CLOCK_MONOTONIC, 4), EINVAL);

    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    must("timerfd_create", t);
    show_fd("timerfd", t);
    check("timerfd close-on-exec", fcntl(t, F_GETFD) == FD_CLOEXEC);
    uint64_t v = 0;
    char small[4];
    expect_errno("read unarmed", read(t, &v, 8), EAGAIN);
    expect_errno("read 4 bytes", read(t, small, 4), EINVAL);
    expect_errno("write", write(t, &v, 8), EINVAL);
    printf("poll unarmed: %#x\n", revents(t));

    struct itimerspec its, old;
    expect_errno("gettime", timerfd_gettime(t, &old), 0);
    printf("unarmed: value %ld interval %ld\n", ns_of(old.it_value), ns_of(old.it_interval));
    its = spec(0, 0);
    its.it_value.tv_nsec = 1000000000L;
    expect_errno("settime nsec 1e9", timerfd_settime(t, 0, &its, NULL), EINVAL);
    its = spec(0, 0);
    its.it_interval.tv_sec = -1;
    expect_errno("settime negative interval", timerfd_settime(t, 0, &its, NULL), EINVAL);
    its = spec(MS, 0);
    expect_errno("settime bad flags", timerfd_settime(t, 4, &its, NULL), EINVAL);
    expect_errno("settime on stdin", timerfd_settime(0, 0, &its, NULL), EINVAL);
    expect_errno("settime on a closed fd", timerfd_settime(99, 0, &its, NULL), EBADF);
    expect_errno("gettime on stdin", timerfd_gettime(0, &old), EINVAL);

    /* A zero value disarms but keeps the interval. */
    its = spec(0, 5);
    expect_errno("settime interval only", timerfd_settime(t, 0, &its, &old), 0);
    timerfd_gettime(t, &old);
    printf("interval only: value %ld interval %ld\n", ns_of(old.it_value), ns_of(old.it_interval));
    close(t);
}

static void timerfd_expiries(void) {
    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    must("timerfd_create", t);
    struct itimerspec its = spec(20 * MS, 0), old;

    watchdog(20, "blocking timerfd read");
    timerfd_settime(t, 0, &its, NULL);
    timerfd_gettime(t, &old);
    check("one-shot armed: 0 < value <= 20ms", ns_of(old.it_value) > 0 && ns_of(old.it_value) <= 20 * MS);
    show_ticks("one-shot blocking read", t);
    timerfd_gettime(t, &old);
    printf("after firing: value %ld interval %ld\n", ns_of(old.it_value), ns_of(old.it_interval));
    fcntl(t, F_SETFL, O_NONBLOCK);
    show_ticks("one-shot second read", t);

    /* Periodic: the count covers every period since the last read. */
    its = spec(10 * MS, 10 * MS);
    timerfd_settime(t, 0, &its, NULL);
    sleep_ms(45);
    printf("periodic poll: %#x\n", revents(t));
    timerfd_gettime(t, &old);
    check("periodic gettime: 0 < value <= 10ms", ns_of(old.it_value) > 0 && ns_of(old.it_value) <= 10 * MS);
    printf("periodic interval: %ld\n", ns_of(old.it_interval));
    long long n = read_ticks(t);
    check("periodic ticks >= 4", n >= 4);
    /* A new setting returns the old one and forgets pending expirations. */
    sleep_ms(25);
    its = spec(10 * 1000 * MS, 0);
    timerfd_settime(t, 0, &its, &old);
    printf("old interval: %ld\n", ns_of(old.it_interval));
    check("old value <= 10ms", ns_of(old.it_value) <= 10 * MS);
    show_ticks("after re-arming", t);
    printf("re-armed poll: %#x\n", revents(t));

    /* Absolute: 1.05 s ago with a 100 ms period is eleven expiries, at once. (A
     * freshly booted machine's monotonic clock may not be that far yet.) */
    while (now_ns(CLOCK_MONOTONIC) < 1100 * (uint64_t)MS)
        sleep_ms(10);
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    its = spec(0, 100 * MS);
    its.it_value.tv_sec = (time_t)((now - 1050 * (uint64_t)MS) / 1000000000u);
    its.it_value.tv_nsec = (long)((now - 1050 * (uint64_t)MS) % 1000000000u);
    timerfd_settime(t, TFD_TIMER_ABSTIME, &its, NULL);
    printf("absolute past poll: %#x\n", revents(t));
    show_ticks("absolute past ticks", t);
    /* Absolute in the future on the wall clock, with CANCEL_ON_SET accepted. */
    int r = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    now = now_ns(CLOCK_REALTIME);
    its = spec(0, 0);
    its.it_value.tv_sec = (time_t)(now / 1000000000u) + 100;
    expect_errno("realtime absolute cancel-on-set",
                 timerfd_settime(r, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL), 0);
    timerfd_gettime(r, &old);
    check("realtime remaining in 99..100 s", old.it_value.tv_sec >= 99 && old.it_value.tv_sec <= 100);
    show_ticks("realtime not yet", r);
    close(r);
    close(t);
    watchdog(0, NULL);
}

static void timerfd_epoll(void) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 7}, out[4];
    must("epoll_ctl timerfd", epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev));
    printf("epoll idle: %d\n", epoll_wait(ep, out, 4, 0));
    struct itimerspec its = spec(15 * MS, 0);
    timerfd_settime(t, 0, &its, NULL);
    watchdog(20, "epoll_wait on a timerfd");
    int n = epoll_wait(ep, out, 4, 10000);
    printf("epoll timer: %d data %llu events %#x\n", n, (unsigned long long)out[0].data.u64, out[0].events);
    printf("epoll no new edge: %d\n", epoll_wait(ep, out, 4, 0));
    show_ticks("ticks after epoll", t);
    watchdog(0, NULL);
    close(ep);
    close(t);
}

/* ---- signalfd ---- */

struct siginfo_line {
    int signo, code, pid_is_me, value;
};

static int read_infos(int fd, struct signalfd_siginfo *si, int max) {
    ssize_t n = read(fd, si, sizeof *si * (size_t)max);
    if (n < 0)
        return -1;
    return (int)(n / (ssize_t)sizeof *si);
}

static const char *code_name(int code) {
    switch (code) {
    case SI_USER: return "SI_USER";
    case SI_TKILL: return "SI_TKILL";
    case SI_QUEUE: return "SI_QUEUE";
    case SI_TIMER: return "SI_TIMER";
    case SI_KERNEL: return "SI_KERNEL";
    default: return "other";
    }
}

static void show_info(const char *label, const struct signalfd_siginfo *si) {
    printf("%s: signo %u code %s pid %s int %d\n", label, si->ssi_signo, code_name(si->ssi_code),
           si->ssi_pid == (uint32_t)getpid() ? "self" : si->ssi_pid == 0 ? "0" : "other", si->ssi_int);
}

static int worker_fd;
static volatile int worker_got;

static void *worker(void *arg) {
    (void)arg;
    struct pollfd p = {worker_fd, POLLIN, 0};
    poll(&p, 1, 10000);
    struct signalfd_siginfo si;
    if (read(worker_fd, &si, sizeof si) == sizeof si)
        worker_got = (int)si.ssi_signo;
    return NULL;
}

static void *late_kill(void *arg) {
    (void)arg;
    sleep_ms(30);
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void signalfd_tests(void) {
    int rt = SIGRTMIN + 2;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, rt);
    must("sigprocmask", sigprocmask(SIG_BLOCK, &mask, NULL));
    sigset_t with_kill = mask;
    sigaddset(&with_kill, SIGKILL);
    int s = signalfd(-1, &with_kill, SFD_NONBLOCK | SFD_CLOEXEC);
    must("signalfd", s);
    show_fd("signalfd", s);
    struct signalfd_siginfo si[4];
    expect_errno("read empty", read(s, si, sizeof si), EAGAIN);
    expect_errno("read 127 bytes", read(s, si, 127), EINVAL);
    expect_errno("write", write(s, si, sizeof si[0]), EINVAL);
    printf("poll empty: %#x\n", revents(s));

    /* A signal for this thread comes before one for the process, whatever numbers. */
    raise(SIGUSR2);
    kill(getpid(), SIGUSR1);
    printf("poll with two: %#x\n", revents(s));
    int n = read_infos(s, si, 4);
    printf("read two: %d\n", n);
    for (int i = 0; i < n; i++)
        show_info("  record", &si[i]);
    /* Process-wide signals come lowest first. */
    kill(getpid(), SIGTERM);
    kill(getpid(), SIGUSR2);
    kill(getpid(), SIGUSR1);
    n = read_infos(s, si, 4);
    printf("read three: %d order %u %u %u\n", n, si[0].ssi_signo, si[1].ssi_signo, si[2].ssi_signo);
    /* Real-time signals queue, FIFO, with their values; a short buffer takes one. */
    for (int v = 1; v <= 3; v++) {
        union sigval sv = {.sival_int = v * 10};
        sigqueue(getpid(), rt, sv);
    }
    n = read_infos(s, si, 1);
    printf("rt one: %d signo-rtmin %d int %d code %s\n", n, (int)si[0].ssi_signo - SIGRTMIN, si[0].ssi_int,
           code_name(si[0].ssi_code));
    n = read_infos(s, si, 4);
    printf("rt rest: %d ints %d %d\n", n, si[0].ssi_int, si[1].ssi_int);

    /* A POSIX timer's signal carries its value. */
    timer_t tm;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR2;
    sev.sigev_value.sival_int = 77;
    must("timer_create", timer_create(CLOCK_MONOTONIC, &sev, &tm));
    struct itimerspec ts = spec(20 * MS, 0);
    timer_settime(tm, 0, &ts, NULL);
    int blocking = signalfd(-1, &mask, 0);
    watchdog(20, "blocking signalfd read");
    n = read_infos(blocking, si, 1);
    watchdog(0, NULL);
    show_info("timer record", &si[0]);
    printf("timer overrun %u\n", si[0].ssi_overrun);
    timer_delete(tm);
    close(blocking);

    /* Changing the mask of the same descriptor. */
    sigset_t only_usr2;
    sigemptyset(&only_usr2);
    sigaddset(&only_usr2, SIGUSR2);
    printf("signalfd update returns the fd: %s\n", signalfd(s, &only_usr2, 0) == s ? "yes" : "no");
    raise(SIGUSR1);
    printf("poll usr1 outside the mask: %#x\n", revents(s));
    expect_errno("read usr1 outside the mask", read(s, si, sizeof si), EAGAIN);
    sigset_t pending;
    sigpending(&pending);
    printf("usr1 still pending: %d\n", sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_BLOCK, NULL, NULL);
    expect_errno("signalfd4 sizemask 4", syscall(SYS_signalfd4, -1, &mask, 4, 0), EINVAL);
    expect_errno("signalfd4 bad flags", syscall(SYS_signalfd4, -1, &mask, 8, 4), EINVAL);
    expect_errno("signalfd4 on stdin", syscall(SYS_signalfd4, 0, &mask, 8, 0), EINVAL);
    expect_errno("signalfd4 on a closed fd", syscall(SYS_signalfd4, 99, &mask, 8, 0), EBADF);
    /* Take the stray SIGUSR1 so it does not linger. */
    signalfd(s, &mask, 0);
    n = read_infos(s, si, 4);
    printf("stray usr1 read: %d signo %u\n", n, si[0].ssi_signo);

    /* A signal for another thread is that thread's to read. */
    worker_fd = s;
    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    watchdog(20, "a thread's own signal");
    pthread_kill(th, SIGUSR2);
    printf("main sees the worker's signal: %#x\n", revents(s));
    pthread_join(th, NULL);
    printf("worker read: %d\n", worker_got);

    /* epoll_wait sleeps until a signal arrives. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 5}, out[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    pthread_create(&th, NULL, late_kill, NULL);
    watchdog(20, "epoll_wait on a signalfd");
    n = epoll_wait(ep, out, 4, 10000);
    printf("epoll signal: %d data %llu events %#x\n", n, (unsigned long long)out[0].data.u64, out[0].events);
    pthread_join(th, NULL);
    printf("epoll no new edge: %d\n", epoll_wait(ep, out, 4, 0));
    kill(getpid(), SIGUSR2);
    printf("epoll new signal, new edge: %d\n", epoll_wait(ep, out, 4, 0));
    n = read_infos(s, si, 4);
    printf("drained: %d first %u\n", n, si[0].ssi_signo);
    watchdog(0, NULL);
    close(ep);
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    timerfd_basics();
    timerfd_expiries();
    timerfd_epoll();
    signalfd_tests();
    printf("timerfd_signalfd: %s\n", checks_failed ? "FAILED" : "done");
    return checks_failed ? 1 : 0;
}
