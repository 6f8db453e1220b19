/*
 * file_locks DIR: flock(2), open file description (OFD) locks and POSIX record locks,
 * one line per check, in DIR/file_locks.work (removed first and at the end).
 *
 * Linux keeps flock and OFD locks per open file description: two open()s of one file
 * conflict even in one process, dup()ed descriptors share their locks, and the locks
 * go when the description's last descriptor closes. POSIX (F_SETLK) locks belong to
 * the process, so they never conflict with each other here, but they do conflict with
 * OFD locks, and closing any descriptor of the file drops them. Blocking requests wait
 * for another thread to unlock and end with EINTR when a signal handler without
 * SA_RESTART runs.
 *
 * Lines are "name: value" with errno names, lock descriptions or yes/no; nothing
 * depends on the process id (l_pid is printed as "mine" or as its value when it is
 * -1 or 0), so one static binary prints the same natively and in Skiff. A broken setup
 * step prints "FATAL <step>: <errno>" and exits 99.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#define WORK_NAME "file_locks.work"

static char path[4096];

static void fatal(const char *step)
{
    printf("FATAL %s: %s\n", step, errno_name(errno));
    exit(99);
}

static int open_file(int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        fatal("open");
    return fd;
}

/* The result of a call that returns -1 and sets errno on failure. */
static const char *res(int r)
{
    return r < 0 ? errno_name(errno) : "ok";
}

static void show(const char *name, int r)
{
    printf("%s: %s\n", name, res(r));
}

static const char *type_name(int type)
{
    switch (type) {
    case F_RDLCK: return "F_RDLCK";
    case F_WRLCK: return "F_WRLCK";
    case F_UNLCK: return "F_UNLCK";
    default: return "?";
    }
}

static int lock_cmd(int fd, int cmd, short type, short whence, off_t start, off_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = whence;
    fl.l_start = start;
    fl.l_len = len;
    return fcntl(fd, cmd, &fl);
}

/* F_GETLK or F_OFD_GETLK for a lock of `type` on [start, start+len): prints what is
 * reported, every field. F_GETLK gets a made-up l_pid, to show that an unlocked answer
 * changes only l_type; F_OFD_GETLK needs l_pid 0. */
static void show_getlk(const char *name, int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    fl.l_pid = cmd == F_GETLK ? 1234 : 0;
    if (fcntl(fd, cmd, &fl) < 0) {
        printf("%s: %s\n", name, errno_name(errno));
        return;
    }
    char pid[32];
    if (fl.l_pid == getpid())
        snprintf(pid, sizeof pid, "mine");
    else
        snprintf(pid, sizeof pid, "%d", (int)fl.l_pid);
    printf("%s: %s whence=%d start=%lld len=%lld pid=%s\n", name, type_name(fl.l_type),
           fl.l_whence, (long long)fl.l_start, (long long)fl.l_len, pid);
}

/* A thread that makes one blocking lock request. */
struct waiter {
    pthread_t thread;
    int fd;
    int cmd;          /* 0: flock(fd, LOCK_EX); else this fcntl with a write lock */
    off_t start, len;
    volatile int started;
    volatile int done;
    int result;
    int err;
};

static void *wait_for_lock(void *arg)
{
    struct waiter *w = arg;
    w->started = 1;
    int r = w->cmd == 0 ? flock(w->fd, LOCK_EX)
                        : lock_cmd(w->fd, w->cmd, F_WRLCK, SEEK_SET, w->start, w->len);
    w->err = errno;
    w->result = r;
    __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void start_waiter(struct waiter *w, int fd, int cmd, off_t start, off_t len)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->cmd = cmd;
    w->start = start;
    w->len = len;
    if (pthread_create(&w->thread, NULL, wait_for_lock, w) != 0)
        fatal("pthread_create");
    while (!w->started)
        usleep(1000);
    /* Give the request time to reach the kernel and block; a request that did not
     * block has certainly finished by now. */
    usleep(100 * 1000);
}

static const char *finish_waiter(struct waiter *w)
{
    pthread_join(w->thread, NULL);
    errno = w->err;
    return res(w->result);
}

static void on_signal(int sig)
{
    (void)sig;
}

/* Interrupt a blocked waiter with SIGUSR1 (no SA_RESTART) until its call returns. */
static const char *interrupt_waiter(struct waiter *w)
{
    while (!__atomic_load_n(&w->done, __ATOMIC_SEQ_CST)) {
        pthread_kill(w->thread, SIGUSR1);
        usleep(20 * 1000);
    }
    return finish_waiter(w);
}

static void flock_checks(void)
{
    int a = open_file(O_RDWR), b = open_file(O_RDWR), ro = open_file(O_RDONLY);
    int a2 = dup(a);
    show("flock ex a", flock(a, LOCK_EX | LOCK_NB));
    show("flock ex b (other description)", flock(b, LOCK_EX | LOCK_NB));
    printf("EWOULDBLOCK is EAGAIN: %s\n", EWOULDBLOCK == EAGAIN ? "yes" : "no");
    show("flock sh b", flock(b, LOCK_SH | LOCK_NB));
    show("flock ex dup of a (same description)", flock(a2, LOCK_EX | LOCK_NB));
    show("flock downgrade a to sh", flock(a, LOCK_SH | LOCK_NB));
    show("flock sh b beside it", flock(b, LOCK_SH | LOCK_NB));
    show("flock upgrade a while b shares", flock(a, LOCK_EX | LOCK_NB));
    show("flock sh ro after failed upgrade", flock(ro, LOCK_SH | LOCK_NB));
    show("flock unlock b", flock(b, LOCK_UN));
    show("flock ex ro (failed upgrade dropped a's lock)", flock(ro, LOCK_EX | LOCK_NB));
    show("flock unlock ro", flock(ro, LOCK_UN));
    show("flock ex a again", flock(a, LOCK_EX | LOCK_NB));
    close(a2);
    show("flock ex b after closing a dup", flock(b, LOCK_EX | LOCK_NB));
    close(a);
    show("flock ex b after closing the description", flock(b, LOCK_EX | LOCK_NB));
    show("flock unlock b without a lock", flock(b, LOCK_UN) == 0 ? flock(b, LOCK_UN) : -1);
    show("flock op 0", flock(b, 0));
    show("flock sh|ex", flock(b, LOCK_SH | LOCK_EX));
    show("flock nb alone", flock(b, LOCK_NB));
    show("flock bad fd", flock(-1, LOCK_EX));
    int p = open(path, O_PATH);
    show("flock O_PATH", flock(p, LOCK_EX));
    close(p);

    /* Blocking: the waiter gets the lock when it is released by unlock, then by close. */
    int c = open_file(O_RDWR);
    flock(b, LOCK_EX);
    struct waiter w;
    start_waiter(&w, c, 0, 0, 0);
    printf("flock waiter blocked: %s\n", w.done ? "no" : "yes");
    flock(b, LOCK_UN);
    printf("flock waiter after unlock: %s\n", finish_waiter(&w));
    show("flock ex b while c holds it", flock(b, LOCK_EX | LOCK_NB));
    int d = open_file(O_RDWR);
    start_waiter(&w, b, 0, 0, 0);
    printf("flock waiter blocked again: %s\n", w.done ? "no" : "yes");
    close(c);
    printf("flock waiter after close: %s\n", finish_waiter(&w));
    start_waiter(&w, d, 0, 0, 0);
    printf("flock waiter interrupted: %s\n", interrupt_waiter(&w));
    close(b);
    close(d);
    close(ro);
}

static void ofd_checks(void)
{
    int a = open_file(O_RDWR), b = open_file(O_RDWR);
    int ro = open_file(O_RDONLY), wo = open_file(O_WRONLY);
    int a2 = dup(a);
    show("ofd wr a [0,10)", lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10));
    show("ofd wr b [5,15)", lock_cmd(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, 10));
    show("ofd rd b [5,15)", lock_cmd(b, F_OFD_SETLK, F_RDLCK, SEEK_SET, 5, 10));
    show("ofd rd b [10,20)", lock_cmd(b, F_OFD_SETLK, F_RDLCK, SEEK_SET, 10, 10));
    show_getlk("ofd getlk b wr [0,eof)", b, F_OFD_GETLK, F_WRLCK, 0, 0);
    show_getlk("ofd getlk a wr [12,14)", a, F_OFD_GETLK, F_WRLCK, 12, 2);
    show_getlk("ofd getlk a rd [12,14)", a, F_OFD_GETLK, F_RDLCK, 12, 2);
    show_getlk("ofd getlk a wr [0,10) (its own)", a, F_OFD_GETLK, F_WRLCK, 0, 10);
    show_getlk("ofd getlk dup of a wr [0,10)", a2, F_OFD_GETLK, F_WRLCK, 0, 10);
    show("ofd downgrade through the dup", lock_cmd(a2, F_OFD_SETLK, F_RDLCK, SEEK_SET, 0, 10));
    show("ofd rd b [0,5) beside it", lock_cmd(b, F_OFD_SETLK, F_RDLCK, SEEK_SET, 0, 5));
    show("ofd wr b [0,5) (a still reads)", lock_cmd(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 5));
    show("ofd unlock a [0,5)", lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 5));
    show("ofd wr b [0,5) now", lock_cmd(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 5));
    show_getlk("ofd getlk a wr [0,20)", a, F_OFD_GETLK, F_WRLCK, 0, 20);
    show_getlk("ofd getlk b wr [5,10) (a's rest)", b, F_OFD_GETLK, F_WRLCK, 5, 5);
    show("ofd unlock b all", lock_cmd(b, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0));
    show("ofd unlock a all", lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0));

    /* Splitting and merging one description's ranges. */
    lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 40, 20);
    lock_cmd(a, F_OFD_SETLK, F_RDLCK, SEEK_SET, 10, 10);
    show_getlk("ofd split: [0,10)", b, F_OFD_GETLK, F_RDLCK, 0, 10);
    show_getlk("ofd split: [10,20) read", b, F_OFD_GETLK, F_RDLCK, 10, 10);
    show_getlk("ofd split: [10,20) write", b, F_OFD_GETLK, F_WRLCK, 10, 10);
    show_getlk("ofd split: [20,40)", b, F_OFD_GETLK, F_RDLCK, 20, 20);
    show_getlk("ofd split: hole [40,60)", b, F_OFD_GETLK, F_WRLCK, 40, 20);
    show_getlk("ofd split: [60,eof)", b, F_OFD_GETLK, F_RDLCK, 60, 0);
    lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    show_getlk("ofd merged again", b, F_OFD_GETLK, F_RDLCK, 50, 1);
    lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0);

    /* Ranges relative to the offset and the end, and backwards. */
    lseek(a, 50, SEEK_SET);
    lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_CUR, 0, 5);
    show_getlk("ofd SEEK_CUR 50", b, F_OFD_GETLK, F_WRLCK, 0, 0);
    lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0);
    lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_END, -10, 0);
    show_getlk("ofd SEEK_END -10 to eof", b, F_OFD_GETLK, F_WRLCK, 0, 0);
    lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0);
    lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 30, -10);
    show_getlk("ofd negative length", b, F_OFD_GETLK, F_WRLCK, 0, 0);
    lock_cmd(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0);

    /* Bad requests. */
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_pid = 1;
    show("ofd setlk l_pid != 0", fcntl(a, F_OFD_SETLK, &fl));
    show("ofd getlk l_pid != 0", fcntl(a, F_OFD_GETLK, &fl));
    show("ofd setlk l_type 99", lock_cmd(a, F_OFD_SETLK, 99, SEEK_SET, 0, 1));
    show("ofd getlk F_UNLCK", lock_cmd(a, F_OFD_GETLK, F_UNLCK, SEEK_SET, 0, 1));
    show("ofd setlk whence 7", lock_cmd(a, F_OFD_SETLK, F_WRLCK, 7, 0, 1));
    show("ofd setlk start -1", lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, -1, 1));
    show("ofd setlk backwards past 0", lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, -6));
    show("ofd setlk past OFFSET_MAX", lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 2));
    show("ofd wr on O_RDONLY", lock_cmd(ro, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    show("ofd rd on O_WRONLY", lock_cmd(wo, F_OFD_SETLK, F_RDLCK, SEEK_SET, 0, 1));
    show("ofd unlock on O_RDONLY", lock_cmd(ro, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 1));
    show("ofd bad fd", lock_cmd(-1, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    show("ofd bad pointer", fcntl(a, F_OFD_SETLK, (struct flock *)8));

    /* Closing a dup keeps the lock; closing the description drops it. */
    lock_cmd(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 0);
    close(a2);
    show("ofd wr b after closing a dup", lock_cmd(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    close(a);
    show("ofd wr b after closing the description",
         lock_cmd(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 1));

    /* Blocking. */
    int c = open_file(O_RDWR);
    struct waiter w;
    start_waiter(&w, c, F_OFD_SETLKW, 0, 10);
    printf("ofd waiter blocked: %s\n", w.done ? "no" : "yes");
    lock_cmd(b, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 1);
    printf("ofd waiter after unlock: %s\n", finish_waiter(&w));
    start_waiter(&w, b, F_OFD_SETLKW, 5, 1);
    printf("ofd waiter interrupted: %s\n", interrupt_waiter(&w));
    start_waiter(&w, b, F_OFD_SETLKW, 20, 1);
    printf("ofd waiter on a free range: %s\n", finish_waiter(&w));
    close(c);
    close(b);
    close(ro);
    close(wo);
}

static void posix_checks(void)
{
    int a = open_file(O_RDWR), b = open_file(O_RDWR), o = open_file(O_RDWR);
    int ro = open_file(O_RDONLY);
    show("posix wr a [0,10)", lock_cmd(a, F_SETLK, F_WRLCK, SEEK_SET, 0, 10));
    show("posix wr b [0,10) (same process)", lock_cmd(b, F_SETLK, F_WRLCK, SEEK_SET, 0, 10));
    show("posix wait wr b [0,10)", lock_cmd(b, F_SETLKW, F_WRLCK, SEEK_SET, 0, 10));
    show_getlk("posix getlk b wr [0,10)", b, F_GETLK, F_WRLCK, 0, 10);
    show("ofd wr o [5,6) over the process's lock", lock_cmd(o, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, 1));
    show_getlk("ofd getlk o wr [5,6)", o, F_OFD_GETLK, F_WRLCK, 5, 1);
    show("ofd wr o [20,30)", lock_cmd(o, F_OFD_SETLK, F_WRLCK, SEEK_SET, 20, 10));
    show("posix wr a [25,26) over the ofd lock", lock_cmd(a, F_SETLK, F_WRLCK, SEEK_SET, 25, 1));
    show_getlk("posix getlk a wr [0,eof)", a, F_GETLK, F_WRLCK, 15, 0);
    show("posix wr o [20,30) (ofd on the same description)",
         lock_cmd(o, F_SETLK, F_WRLCK, SEEK_SET, 20, 10));
    show("posix setlk l_type 99", lock_cmd(a, F_SETLK, 99, SEEK_SET, 0, 1));
    show("posix getlk l_type 99", lock_cmd(a, F_GETLK, 99, SEEK_SET, 0, 1));
    show("posix getlk F_UNLCK", lock_cmd(a, F_GETLK, F_UNLCK, SEEK_SET, 0, 1));
    show("posix wr on O_RDONLY", lock_cmd(ro, F_SETLK, F_WRLCK, SEEK_SET, 0, 1));
    show("posix rd on O_RDONLY", lock_cmd(ro, F_SETLK, F_RDLCK, SEEK_SET, 40, 1));
    show("posix bad pointer", fcntl(a, F_SETLK, (struct flock *)8));

    /* Closing any descriptor of the file drops the process's POSIX locks. */
    int other = open_file(O_RDONLY);
    close(other);
    show("ofd wr o [0,10) after an unrelated close",
         lock_cmd(o, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10));
    show_getlk("ofd getlk b wr [0,10)", b, F_OFD_GETLK, F_WRLCK, 0, 10);
    lock_cmd(o, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0);

    /* A POSIX waiter blocks on an OFD lock until it goes. */
    lock_cmd(o, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10);
    struct waiter w;
    start_waiter(&w, a, F_SETLKW, 0, 10);
    printf("posix waiter blocked: %s\n", w.done ? "no" : "yes");
    lock_cmd(o, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0);
    printf("posix waiter after unlock: %s\n", finish_waiter(&w));
    lock_cmd(a, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);

    /* flock and record locks do not see each other. */
    lock_cmd(o, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 0);
    show("flock ex beside an ofd lock", flock(b, LOCK_EX | LOCK_NB));
    close(a);
    close(b);
    close(o);
    close(ro);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: file_locks DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        fatal("sigaction");
    snprintf(path, sizeof path, "%s/%s", argv[1], WORK_NAME);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fatal("create");
    char data[100];
    memset(data, 'x', sizeof data);
    if (write(fd, data, sizeof data) != (ssize_t)sizeof data)
        fatal("write");
    close(fd);
    flock_checks();
    ofd_checks();
    posix_checks();
    unlink(path);
    printf("file_locks: done\n");
    return 0;
}
