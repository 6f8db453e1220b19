/*
 * processes: fork, vfork and wait as Linux does them. fork's return values and the
 * child's getpid/getppid; copy-on-write isolation of globals, heap and stack in both
 * directions; exit statuses (_exit, kill by SIGTERM while in pause(), abort); two
 * processes streaming 100000 bytes through a pipe concurrently; descriptors sharing one
 * open file description (and its offset) across fork; waitpid WNOHANG and ECHILD;
 * SIGCHLD with its siginfo; automatic reaping with SIGCHLD ignored; waitid; vfork;
 * twenty children at once; a grandchild; setpgid in a child.
 *
 * Output is deterministic: fixed labels, exit codes, signal and errno names and
 * booleans, printed by the parent only (children report through exit codes and pipes,
 * and always leave with _exit, so no stdio buffer is ever flushed twice). Never pids.
 * Each phase runs under the alarm() watchdog from common.h; a child that blocks arms
 * its own alarm (alarms are not inherited), so a broken kernel cannot leave a process
 * holding stdout open forever.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_SECS 20

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGCHLD: return "SIGCHLD";
    default: return "SIG?";
    }
}

static const char *cld_code_name(int code)
{
    switch (code) {
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    case CLD_DUMPED: return "CLD_DUMPED";
    case CLD_TRAPPED: return "CLD_TRAPPED";
    case CLD_STOPPED: return "CLD_STOPPED";
    case CLD_CONTINUED: return "CLD_CONTINUED";
    default: return "other";
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Makes the compiler assume `p` (and all memory) may have changed: forked writes are
 * invisible to the optimizer, so every value checked is really loaded from memory. */
static void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* fork() after flushing stdout, so that the child never inherits unwritten output. */
static pid_t fork_flushed(void)
{
    fflush(stdout);
    pid_t pid = fork();
    must("fork", pid);
    return pid;
}

/* In a child that may block: its own watchdog, since alarms do not survive fork. */
static void child_guard(void)
{
    alarm(WATCHDOG_SECS);
}

/* waitpid that retries after EINTR (a SIGCHLD handler may interrupt it). */
static pid_t wait_for(pid_t pid, int *status, int options)
{
    pid_t got;
    do
        got = waitpid(pid, status, options);
    while (got < 0 && errno == EINTR);
    return got;
}

/* Waits for `pid` and returns its exit code, or 1000 + signal if a signal killed it,
 * or -1 if waitpid did not report it. */
static int reap(pid_t pid)
{
    int status = 0;
    if (wait_for(pid, &status, 0) != pid)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 1000 + WTERMSIG(status);
    return -2;
}

static int read_full(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, (char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Blocks until the write end of `fd`'s pipe is closed everywhere; returns bytes seen. */
static long drain_to_eof(int fd)
{
    char buf[256];
    long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return total;
        total += n;
    }
}

/* ---- fork return values and ids ---------------------------------------------------- */

struct ids {
    int fork_returned_zero;
    pid_t pid;
    pid_t ppid;
};

static void test_fork_ids(void)
{
    watchdog(WATCHDOG_SECS, "fork ids");
    int p[2];
    must("pipe", pipe(p));
    pid_t parent = getpid();
    pid_t pid = fork_flushed();
    if (pid == 0) {
        struct ids ids = {1, getpid(), getppid()};
        close(p[0]);
        _exit(write_full(p[1], &ids, sizeof ids) == 0 ? 0 : 1);
    }
    close(p[1]);
    struct ids ids;
    memset(&ids, 0, sizeof ids);
    int got = read_full(p[0], &ids, sizeof ids);
    close(p[0]);
    int code = reap(pid);
    check("fork returned a pid > 0 in the parent", pid > 0);
    check("child got its report through", got == 0);
    check("fork returned 0 in the child", ids.fork_returned_zero == 1);
    check("child getpid() equals fork's return in the parent", ids.pid == pid);
    check("child getppid() equals the parent's getpid()", ids.ppid == parent);
    check("parent getpid() unchanged by fork", getpid() == parent);
    printf("fork ids child exit: %d\n", code);
}

/* ---- memory isolation -------------------------------------------------------------- */

static volatile int global_value = 1111;

static void test_isolation(void)
{
    watchdog(WATCHDOG_SECS, "memory isolation");
    int stack_value = 2222;
    char *small = malloc(64);
    size_t big_len = 1024 * 1024; /* large enough to be an mmap'ed allocation */
    char *big = malloc(big_len);
    if (!small || !big) {
        printf("FATAL malloc\n");
        exit(99);
    }
    memset(small, 'p', 64);
    memset(big, 'P', big_len);
    escape(&stack_value);
    escape(small);
    escape(big);

    /* Child writes, parent must not see it. */
    pid_t pid = fork_flushed();
    if (pid == 0) {
        int saw_originals = global_value == 1111 && stack_value == 2222 && small[10] == 'p' &&
                            big[big_len - 1] == 'P';
        global_value = 9999;
        stack_value = 8888;
        memset(small, 'c', 64);
        memset(big, 'C', big_len);
        escape(&stack_value);
        escape(small);
        escape(big);
        int sees_own = global_value == 9999 && stack_value == 8888 &&
                       small[63] == 'c' && big[12345] == 'C';
        _exit(saw_originals && sees_own ? 0 : 1);
    }
    int code = reap(pid);
    escape(&stack_value);
    escape(small);
    escape(big);
    printf("isolation child exit: %d\n", code);
    check("child saw the parent's values, then its own writes", code == 0);
    printf("parent global after the child wrote: %d\n", global_value);
    printf("parent stack variable after the child wrote: %d\n", stack_value);
    check("parent global unchanged", global_value == 1111);
    check("parent stack variable unchanged", stack_value == 2222);
    int small_ok = 1, big_ok = 1;
    for (int i = 0; i < 64; i++)
        if (small[i] != 'p')
            small_ok = 0;
    for (size_t i = 0; i < big_len; i += 4096)
        if (big[i] != 'P' || big[i + 4095] != 'P')
            big_ok = 0;
    check("parent small malloc buffer unchanged", small_ok);
    check("parent 1 MiB malloc buffer unchanged", big_ok);

    /* Parent writes after fork, child must not see it. */
    int go[2];
    must("pipe", pipe(go));
    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(go[1]);
        drain_to_eof(go[0]);
        escape(small);
        escape(big);
        int unchanged = global_value == 1111 && small[0] == 'p' && big[big_len / 2] == 'P';
        _exit(unchanged ? 0 : 1);
    }
    close(go[0]);
    global_value = 3333;
    memset(small, 'q', 64);
    memset(big, 'Q', big_len);
    escape(small);
    escape(big);
    close(go[1]);
    code = reap(pid);
    check("child does not see the parent's writes after fork", code == 0);
    global_value = 1111;
    free(small);
    free(big);
}

/* ---- exit statuses ------------------------------------------------------------------ */

static void print_status(const char *label, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited %d\n", label, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by %s\n", label, signal_name(WTERMSIG(status)));
    else
        printf("%s: other status\n", label);
}

static void test_exit_status(void)
{
    watchdog(WATCHDOG_SECS, "exit statuses");
    int status = 0;

    pid_t pid = fork_flushed();
    if (pid == 0)
        _exit(42);
    check("waitpid returns the child's pid", wait_for(pid, &status, 0) == pid);
    print_status("_exit(42)", status);
    check("_exit(42): WIFEXITED", WIFEXITED(status));
    check("_exit(42): WEXITSTATUS is 42", WIFEXITED(status) && WEXITSTATUS(status) == 42);
    check("_exit(42): not WIFSIGNALED", !WIFSIGNALED(status));

    int ready[2];
    must("pipe", pipe(ready));
    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(ready[0]);
        char byte = 'r';
        (void)!write(ready[1], &byte, 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char byte = 0;
    check("pause child is ready", read_full(ready[0], &byte, 1) == 0 && byte == 'r');
    close(ready[0]);
    sleep_ms(20); /* let it get into pause() */
    expect_errno("kill(child, SIGTERM)", kill(pid, SIGTERM), 0);
    status = 0;
    check("waitpid returns the killed child's pid", wait_for(pid, &status, 0) == pid);
    print_status("SIGTERM during pause()", status);
    check("SIGTERM: WIFSIGNALED", WIFSIGNALED(status));
    check("SIGTERM: WTERMSIG is SIGTERM", WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    check("SIGTERM: not WIFEXITED", !WIFEXITED(status));

    pid = fork_flushed();
    if (pid == 0) {
        /* No core file natively; the status is the same either way apart from
         * WCOREDUMP, which is not printed. */
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        abort();
    }
    status = 0;
    check("waitpid returns the aborted child's pid", wait_for(pid, &status, 0) == pid);
    print_status("abort()", status);
    check("abort: WIFSIGNALED", WIFSIGNALED(status));
    check("abort: WTERMSIG is SIGABRT", WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* ---- a pipe between two running processes ------------------------------------------- */

#define PIPE_BYTES 100000

static unsigned char pattern_byte(long i)
{
    return (unsigned char)((i * 131 + 7) & 0xff);
}

struct pipe_report {
    uint64_t bytes;
    uint64_t sum;
};

static void test_pipe(void)
{
    watchdog(WATCHDOG_SECS, "pipe between processes");
    int data[2], result[2];
    must("pipe", pipe(data));
    must("pipe", pipe(result));
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(data[1]);
        close(result[0]);
        struct pipe_report report = {0, 0};
        unsigned char buf[4096];
        for (;;) {
            ssize_t n = read(data[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            for (ssize_t i = 0; i < n; i++)
                report.sum += buf[i];
            report.bytes += (uint64_t)n;
        }
        _exit(write_full(result[1], &report, sizeof report) == 0 ? 0 : 1);
    }
    close(data[0]);
    close(result[1]);
    static unsigned char out[PIPE_BYTES];
    uint64_t expected = 0;
    for (long i = 0; i < PIPE_BYTES; i++) {
        out[i] = pattern_byte(i);
        expected += out[i];
    }
    int wrote = write_full(data[1], out, sizeof out);
    close(data[1]);
    check("parent wrote 100000 bytes into the pipe", wrote == 0);
    struct pipe_report report = {0, 0};
    int got = read_full(result[0], &report, sizeof report);
    close(result[0]);
    int code = reap(pid);
    check("child reported back through the second pipe", got == 0);
    printf("pipe child read %llu bytes, sum %llu (expected %llu)\n", (unsigned long long)report.bytes,
           (unsigned long long)report.sum, (unsigned long long)expected);
    check("pipe sum matches", report.bytes == PIPE_BYTES && report.sum == expected);
    printf("pipe child exit: %d\n", code);
}

/* ---- shared open file descriptions -------------------------------------------------- */

static void test_shared_offset(void)
{
    watchdog(WATCHDOG_SECS, "shared file offset");
    char path[] = "/tmp/skiff-processes-XXXXXX";
    int fd = mkstemp(path);
    must("mkstemp", fd);
    unlink(path);
    pid_t pid = fork_flushed();
    if (pid == 0)
        _exit(write(fd, "abc", 3) == 3 ? 0 : 1);
    int code = reap(pid);
    check("child wrote abc through the inherited fd", code == 0);
    off_t offset = lseek(fd, 0, SEEK_CUR);
    printf("parent offset after the child's write: %lld\n", (long long)offset);
    check("offset is shared with the child", offset == 3);
    char buf[8] = {0};
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    check("parent reads back abc", n == 3 && memcmp(buf, "abc", 3) == 0);

    /* And the other way: the parent moves the offset, the child writes at it. */
    must("lseek", lseek(fd, 1, SEEK_SET));
    pid = fork_flushed();
    if (pid == 0)
        _exit(lseek(fd, 0, SEEK_CUR) == 1 && write(fd, "XY", 2) == 2 ? 0 : 1);
    code = reap(pid);
    check("child saw the parent's offset and wrote there", code == 0);
    memset(buf, 0, sizeof buf);
    n = pread(fd, buf, sizeof buf, 0);
    printf("file after both writes: %.*s\n", n > 0 ? (int)n : 0, buf);
    check("file is aXY with offset 3", n == 3 && memcmp(buf, "aXY", 3) == 0 && lseek(fd, 0, SEEK_CUR) == 3);
    close(fd);
}

/* ---- WNOHANG and ECHILD ------------------------------------------------------------- */

static void test_wnohang(void)
{
    watchdog(WATCHDOG_SECS, "waitpid WNOHANG");
    int hold[2];
    must("pipe", pipe(hold));
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(hold[1]);
        drain_to_eof(hold[0]);
        _exit(3);
    }
    close(hold[0]);
    int status = 0;
    pid_t got = waitpid(-1, &status, WNOHANG);
    printf("waitpid(-1, WNOHANG) with a live child: %s\n",
           got == 0 ? "0" : got == pid ? "the child" : got < 0 ? errno_name(errno) : "another pid");
    check("WNOHANG with a live child returns 0", got == 0);
    got = waitpid(pid, &status, WNOHANG);
    check("WNOHANG on that pid returns 0 too", got == 0);
    close(hold[1]);
    status = 0;
    got = wait_for(-1, &status, 0);
    check("waitpid(-1) then reaps it", got == pid);
    print_status("released child", status);

    status = 0;
    expect_errno("waitpid(-1) with no children", wait_for(-1, &status, 0), ECHILD);
    expect_errno("waitpid(-1, WNOHANG) with no children", waitpid(-1, &status, WNOHANG), ECHILD);
    expect_errno("waitpid of a reaped child", waitpid(pid, &status, 0), ECHILD);
    expect_errno("wait(NULL) with no children", wait(NULL), ECHILD);
}

/* ---- SIGCHLD ------------------------------------------------------------------------ */

static volatile sig_atomic_t chld_count;
static volatile sig_atomic_t chld_code;
static volatile sig_atomic_t chld_status;
static volatile sig_atomic_t chld_signo;
static volatile pid_t chld_pid;

static void chld_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    chld_count++;
    chld_signo = sig == info->si_signo ? sig : -1;
    chld_code = info->si_code;
    chld_status = info->si_status;
    chld_pid = info->si_pid;
}

static void set_chld(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    must("sigaction SIGCHLD", sigaction(SIGCHLD, &sa, NULL));
}

static void test_sigchld(void)
{
    watchdog(WATCHDOG_SECS, "SIGCHLD handler");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = chld_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    must("sigaction SIGCHLD", sigaction(SIGCHLD, &sa, NULL));
    chld_count = 0;
    chld_code = 0;
    chld_status = -1;
    chld_pid = 0;

    pid_t pid = fork_flushed();
    if (pid == 0)
        _exit(33);
    int status = 0;
    pid_t got = wait_for(pid, &status, 0);
    /* On Linux the handler has run by now; allow a guest a moment all the same. */
    for (int i = 0; i < 200 && chld_count == 0; i++)
        sleep_ms(5);
    check("waitpid reaped the child", got == pid);
    print_status("SIGCHLD child", status);
    check("SIGCHLD handler ran", chld_count >= 1);
    printf("SIGCHLD handler calls: %d\n", (int)chld_count);
    printf("SIGCHLD si_signo: %s\n", signal_name(chld_signo));
    printf("SIGCHLD si_code: %s\n", cld_code_name(chld_code));
    printf("SIGCHLD si_status: %d\n", (int)chld_status);
    check("SIGCHLD si_code is CLD_EXITED", chld_code == CLD_EXITED);
    check("SIGCHLD si_status is the exit code", chld_status == 33);
    check("SIGCHLD si_pid is the child", chld_pid == pid);

    /* A child killed by a signal: CLD_KILLED with the signal number. */
    chld_count = 0;
    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        for (;;)
            pause();
    }
    kill(pid, SIGKILL);
    status = 0;
    got = wait_for(pid, &status, 0);
    for (int i = 0; i < 200 && chld_count == 0; i++)
        sleep_ms(5);
    print_status("SIGKILLed child", status);
    printf("SIGCHLD for a killed child si_code: %s\n", cld_code_name(chld_code));
    printf("SIGCHLD for a killed child si_status: %s\n", signal_name(chld_status));
    check("killed child's SIGCHLD is CLD_KILLED with SIGKILL",
          chld_count >= 1 && chld_code == CLD_KILLED && chld_status == SIGKILL);
    set_chld(SIG_DFL);
}

static void test_sigchld_ignored(void)
{
    watchdog(WATCHDOG_SECS, "SIGCHLD ignored");
    set_chld(SIG_IGN);
    int gone[2];
    must("pipe", pipe(gone));
    pid_t pid = fork_flushed();
    if (pid == 0) {
        close(gone[0]);
        _exit(4); /* closing gone[1] on exit tells the parent */
    }
    close(gone[1]);
    drain_to_eof(gone[0]);
    close(gone[0]);
    /* The pipe closes before the child is reaped: wait until the pid is gone. */
    int tries = 0;
    while (kill(pid, 0) == 0 && tries < 400) {
        sleep_ms(5);
        tries++;
    }
    expect_errno("kill(child, 0) after it exited with SIGCHLD ignored", kill(pid, 0), ESRCH);
    expect_errno("wait(NULL) with SIGCHLD ignored", wait(NULL), ECHILD);
    set_chld(SIG_DFL);
}

/* ---- waitid ------------------------------------------------------------------------- */

static void test_waitid(void)
{
    watchdog(WATCHDOG_SECS, "waitid");
    pid_t pid = fork_flushed();
    if (pid == 0)
        _exit(17);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do
        rc = waitid(P_PID, (id_t)pid, &info, WEXITED);
    while (rc < 0 && errno == EINTR);
    expect_errno("waitid(P_PID, child, WEXITED)", rc, 0);
    printf("waitid si_signo: %s\n", signal_name(info.si_signo));
    printf("waitid si_code: %s\n", cld_code_name(info.si_code));
    printf("waitid si_status: %d\n", info.si_status);
    check("waitid si_pid is the child", info.si_pid == pid);
    check("waitid reaped it", waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD);

    /* WNOWAIT leaves the child waitable. */
    pid = fork_flushed();
    if (pid == 0)
        _exit(18);
    memset(&info, 0, sizeof info);
    do
        rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
    while (rc < 0 && errno == EINTR);
    expect_errno("waitid WNOWAIT", rc, 0);
    printf("waitid WNOWAIT si_status: %d\n", info.si_status);
    int status = 0;
    check("child still waitable after WNOWAIT", wait_for(pid, &status, 0) == pid);
    print_status("after WNOWAIT", status);
}

/* ---- vfork -------------------------------------------------------------------------- */

static int vfork_child_status(void)
{
    fflush(stdout);
    pid_t pid = vfork();
    if (pid == 0)
        _exit(7);
    if (pid < 0)
        return -1;
    return reap(pid);
}

static void test_vfork(void)
{
    watchdog(WATCHDOG_SECS, "vfork");
    int code = vfork_child_status();
    printf("vfork child exit: %d\n", code);
    check("vfork child exit is 7", code == 7);
}

/* ---- many children ------------------------------------------------------------------ */

#define MANY 20

static void test_many(void)
{
    watchdog(WATCHDOG_SECS, "20 children");
    pid_t pids[MANY];
    for (int i = 0; i < MANY; i++) {
        pids[i] = fork_flushed();
        if (pids[i] == 0)
            _exit(i);
    }
    int reaped = 0, sum = 0, matched = 0;
    for (int i = 0; i < MANY; i++) {
        int status = 0;
        pid_t got;
        do
            got = wait(&status);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            break;
        reaped++;
        if (WIFEXITED(status)) {
            sum += WEXITSTATUS(status);
            for (int j = 0; j < MANY; j++)
                if (pids[j] == got && WEXITSTATUS(status) == j)
                    matched++;
        }
    }
    printf("children reaped: %d, status sum %d (expected %d)\n", reaped, sum, MANY * (MANY - 1) / 2);
    check("all 20 reaped with the right status sum", reaped == MANY && sum == MANY * (MANY - 1) / 2);
    check("every child's status matches its pid", matched == MANY);
    int distinct = 1;
    for (int i = 0; i < MANY; i++)
        for (int j = i + 1; j < MANY; j++)
            if (pids[i] == pids[j])
                distinct = 0;
    check("20 distinct pids", distinct);
    expect_errno("wait after reaping all 20", wait(NULL), ECHILD);
}

/* ---- a grandchild ------------------------------------------------------------------- */

static void test_grandchild(void)
{
    watchdog(WATCHDOG_SECS, "grandchild");
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        pid_t me = getpid();
        pid_t grandchild = fork();
        if (grandchild < 0)
            _exit(90);
        if (grandchild == 0)
            _exit(getppid() == me ? 5 : 50);
        int status = 0;
        if (wait_for(grandchild, &status, 0) != grandchild || !WIFEXITED(status))
            _exit(91);
        _exit(WEXITSTATUS(status) + 1);
    }
    int code = reap(pid);
    printf("grandchild chain exit: %d\n", code);
    check("child saw its grandchild exit 5 and exited 6", code == 6);
}

/* ---- process groups ----------------------------------------------------------------- */

struct pgid_report {
    int setpgid_rc;
    int leader;
};

static void test_pgid(void)
{
    watchdog(WATCHDOG_SECS, "setpgid");
    pid_t own_group = getpgrp();
    int report_pipe[2], hold[2];
    must("pipe", pipe(report_pipe));
    must("pipe", pipe(hold));
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(report_pipe[0]);
        close(hold[1]);
        struct pgid_report r;
        r.setpgid_rc = setpgid(0, 0) == 0 ? 0 : errno;
        r.leader = getpgrp() == getpid() && getpgid(0) == getpid();
        if (write_full(report_pipe[1], &r, sizeof r) != 0)
            _exit(1);
        drain_to_eof(hold[0]); /* stay alive while the parent looks */
        _exit(0);
    }
    close(report_pipe[1]);
    close(hold[0]);
    struct pgid_report r = {-1, 0};
    int got = read_full(report_pipe[0], &r, sizeof r);
    close(report_pipe[0]);
    check("child reported its process group", got == 0);
    expect_error("setpgid(0, 0) in the child", r.setpgid_rc, 0);
    check("child getpgrp() == getpid() after setpgid(0, 0)", r.leader);
    pid_t child_group = getpgid(pid);
    check("parent getpgid(child) is the child's pid", child_group == pid);
    check("parent's own process group unchanged", getpgrp() == own_group);
    close(hold[1]);
    printf("setpgid child exit: %d\n", reap(pid));
}

int main(void)
{
    watchdog(WATCHDOG_SECS, "start-up");
    signal(SIGPIPE, SIG_IGN); /* a dead reader shows as a failed check, not a kill */

    test_fork_ids();
    test_isolation();
    test_exit_status();
    test_pipe();
    test_shared_offset();
    test_wnohang();
    test_sigchld();
    test_sigchld_ignored();
    test_waitid();
    test_vfork();
    test_many();
    test_grandchild();
    test_pgid();
    watchdog(0, NULL);
    if (checks_failed)
        printf("processes: %d failed checks\n", checks_failed);
    else
        printf("processes: done\n");
    return checks_failed ? 1 : 0;
}
