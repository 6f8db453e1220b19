/*
 * exec: execve and execveat as Linux does them. The program re-executes itself (found
 * through /proc/self/exe) in a mode named by argv[1] and checks what the new program
 * sees: argv and the environment exactly as given; the same pid and parent; descriptors
 * kept or closed by their close-on-exec flag; caught signals reset to SIG_DFL while
 * ignored ones, the blocked mask, pending signals and a pending alarm() survive; the
 * alternate signal stack gone; the working directory, umask, process group and
 * resource limits kept. Also: execve's errors (ENOENT, EACCES, ENOEXEC, ENOTDIR,
 * EFAULT, E2BIG, ELOOP, ...) returned to a caller that keeps running unharmed; `#!`
 * scripts with and without an interpreter argument, with blanks around it and with an
 * interpreter that is itself a script; execveat with AT_FDCWD, a directory descriptor
 * and AT_EMPTY_PATH on a descriptor of the program; vfork whose parent resumes at the
 * child's execve; execve from a multi-threaded process, from the main thread and from
 * another thread (which takes over the process id), leaving one thread; and the status
 * of an exec'd program killed by a signal.
 *
 * Output is deterministic: fixed labels, exit codes, signal and errno names, booleans,
 * and paths only as basenames. Never pids. The parent flushes stdout before every
 * fork, waits for each child before printing again, and the exec'd programs print
 * their own lines and leave with exit(), so lines never interleave. Everything runs
 * under the alarm() watchdog from common.h; an exec'd program arms its own watchdog,
 * so a broken kernel cannot leave a process holding stdout open forever.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

#define WATCHDOG_SECS 20
/* A 100 KiB argument fits (Linux's limit for one string is 128 KiB); 200 KiB does not. */
#define BIG_ARG_LEN (100 * 1024)
#define TOO_BIG_ARG_LEN (200 * 1024)

extern char **environ;

/* The running program's own path, from /proc/self/exe. */
static char self_path[PATH_MAX];
/* A private directory under /tmp for the files this test creates, so that concurrent
 * runs do not collide; its name is never printed. */
static char work_dir[] = "/tmp/skiff-exec-XXXXXX";
/* "SKIFF_EXEC_SELF=<self_path>": lets an exec'd program compare /proc/self/exe. */
static char self_env[PATH_MAX + 32];
static char *child_env[] = {"SKIFF_EXEC_TEST=42", self_env, NULL};

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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "<work_dir>/<name>" in a static buffer of its own per slot. */
static const char *work_path(int slot, const char *name)
{
    static char paths[8][PATH_MAX];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", work_dir, name);
    return paths[slot];
}

/* fork() after flushing stdout, so that the child never inherits unwritten output. */
static pid_t fork_flushed(void)
{
    fflush(stdout);
    pid_t pid = fork();
    must("fork", pid);
    return pid;
}

/* In a forked child: its own watchdog, since alarms do not survive fork (they do
 * survive execve, where SIGALRM's default action then ends a stuck program). */
static void child_guard(void)
{
    alarm(WATCHDOG_SECS);
}

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

static void print_code(const char *label, int code)
{
    if (code >= 1000)
        printf("%s: killed by %s\n", label, signal_name(code - 1000));
    else
        printf("%s: exited %d\n", label, code);
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

/* The number after "Threads:" in /proc/self/status, or -1. */
static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    int count = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            count = atoi(line + 8);
    fclose(f);
    return count;
}

/* Whether /proc/self/exe names the program this test started as. */
static int exe_is_self(void)
{
    const char *expected = getenv("SKIFF_EXEC_SELF");
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0 || !expected)
        return 0;
    buf[n] = 0;
    return strcmp(buf, expected) == 0;
}

/* In a forked child: execve the program itself; reports a failure and exits 127. */
static __attribute__((noreturn)) void exec_self(char *const argv[])
{
    execve(self_path, argv, child_env);
    printf("FATAL execve in the child: %s\n", errno_name(errno));
    fflush(stdout);
    _exit(127);
}

/* fork, run `prepare` in the child (if any), then execve the program itself with
 * `argv`; returns the child's reap() code. */
static int spawn_self(void (*prepare)(void *), void *arg, char *const argv[])
{
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        if (prepare)
            prepare(arg);
        fflush(stdout);
        exec_self(argv);
    }
    return reap(pid);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    must("create a test file", fd);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        printf("FATAL write %s\n", base_name(path));
        exit(99);
    }
    must("fchmod", fchmod(fd, mode));
    /* Closed before any execve: a file open for writing cannot run (ETXTBSY). */
    must("close", close(fd));
}

/* ====================================================================================
 * The modes of the exec'd program.
 * ==================================================================================== */

static int mode_child_args(int argc, char **argv)
{
    printf("child argc: %d\n", argc);
    printf("child argv[0]: %s\n", argv[0]);
    for (int i = 1; i < argc; i++)
        printf("child argv[%d]: %s\n", i, argv[i]);
    check("child argv ends with NULL", argv[argc] == NULL);
    const char *value = getenv("SKIFF_EXEC_TEST");
    printf("child SKIFF_EXEC_TEST: %s\n", value ? value : "(unset)");
    int entries = 0;
    for (char **e = environ; *e; e++)
        entries++;
    printf("child environment entries: %d\n", entries);
    check("child /proc/self/exe is the program", exe_is_self());
    return 11;
}

struct ids {
    pid_t pid;
    pid_t ppid;
};

static int mode_ids(char **argv)
{
    int fd = atoi(argv[2]);
    struct ids ids = {getpid(), getppid()};
    return write(fd, &ids, sizeof ids) == (ssize_t)sizeof ids ? 0 : 1;
}

static int fd_state(const char *label, int fd, int expected_errno, int expected_flags)
{
    int rc = fcntl(fd, F_GETFD);
    if (rc < 0)
        printf("%s: %s\n", label, errno_name(errno));
    else
        printf("%s: flags %d\n", label, rc);
    if (expected_errno)
        return rc < 0 && errno == expected_errno;
    return rc == expected_flags;
}

static int mode_fds(char **argv)
{
    int ok = 1;
    ok &= fd_state("plain pipe fd after exec", atoi(argv[2]), 0, 0);
    ok &= fd_state("F_DUPFD_CLOEXEC fd after exec", atoi(argv[3]), EBADF, 0);
    ok &= fd_state("open(O_CLOEXEC) fd after exec", atoi(argv[4]), EBADF, 0);
    ok &= fd_state("F_SETFD FD_CLOEXEC fd after exec", atoi(argv[5]), EBADF, 0);
    ok &= fd_state("FD_CLOEXEC set then cleared fd after exec", atoi(argv[6]), 0, 0);
    static const char msg[] = "written through the kept fd";
    ok &= write(atoi(argv[2]), msg, sizeof msg - 1) == (ssize_t)(sizeof msg - 1);
    return ok ? 0 : 1;
}

static const char *disposition(int sig)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) < 0)
        return errno_name(errno);
    if (sa.sa_handler == SIG_DFL)
        return "SIG_DFL";
    if (sa.sa_handler == SIG_IGN)
        return "SIG_IGN";
    return "a handler";
}

static int mode_signals(unsigned alarm_left)
{
    printf("alarm still pending after exec: %s\n", alarm_left > 0 ? "yes" : "no");
    const char *usr1 = disposition(SIGUSR1);
    const char *usr2 = disposition(SIGUSR2);
    const char *term = disposition(SIGTERM);
    printf("SIGUSR1 (caught before exec) after exec: %s\n", usr1);
    printf("SIGUSR2 (ignored before exec) after exec: %s\n", usr2);
    printf("SIGTERM (caught with SA_RESTART before exec) after exec: %s\n", term);
    sigset_t mask, pending;
    sigemptyset(&mask);
    sigemptyset(&pending);
    sigprocmask(SIG_BLOCK, NULL, &mask);
    sigpending(&pending);
    check("SIGHUP still blocked after exec", sigismember(&mask, SIGHUP) == 1);
    check("SIGUSR1 not blocked after exec", sigismember(&mask, SIGUSR1) == 0);
    check("SIGHUP still pending after exec", sigismember(&pending, SIGHUP) == 1);
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    sigaltstack(NULL, &ss);
    check("alternate signal stack disabled after exec", (ss.ss_flags & SS_DISABLE) != 0);
    int ok = alarm_left > 0 && strcmp(usr1, "SIG_DFL") == 0 && strcmp(usr2, "SIG_IGN") == 0 &&
             strcmp(term, "SIG_DFL") == 0;
    return ok && !checks_failed ? 0 : 1;
}

static int mode_state(void)
{
    char cwd[PATH_MAX];
    printf("cwd after exec: %s\n", getcwd(cwd, sizeof cwd) ? cwd : errno_name(errno));
    mode_t mask = umask(0);
    printf("umask after exec: %03o\n", (unsigned)mask);
    check("process group leader after exec", getpgrp() == getpid());
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("RLIMIT_NOFILE soft limit after exec: %llu\n", (unsigned long long)rl.rlim_cur);
    return checks_failed ? 1 : 0;
}

/* Exits with the code in argv[3] if /proc/self/exe is right, 1 if not. */
static int mode_report(char **argv)
{
    int ok = exe_is_self();
    printf("%s: /proc/self/exe is the program: %s\n", argv[2], ok ? "yes" : "no");
    return ok ? atoi(argv[3]) : 1;
}

static char big_pattern(size_t i)
{
    return (char)('a' + i % 26);
}

static int mode_big_arg(char **argv)
{
    size_t len = strlen(argv[2]);
    int intact = len == BIG_ARG_LEN;
    for (size_t i = 0; intact && i < len; i++)
        if (argv[2][i] != big_pattern(i))
            intact = 0;
    printf("big argument length after exec: %zu\n", len);
    check("big argument content intact", intact);
    return checks_failed ? 1 : 0;
}

static int mode_threads_after(void)
{
    printf("threads after exec from the main thread: %d\n", thread_count());
    return 17;
}

static int mode_thread_exec(char **argv)
{
    check("pid after exec from another thread is the process id", getpid() == atoi(argv[2]));
    printf("threads after exec from another thread: %d\n", thread_count());
    return 18;
}

static int mode_raise_term(void)
{
    printf("exec'd program raising SIGTERM\n");
    fflush(stdout);
    raise(SIGTERM);
    return 19; /* not reached unless SIGTERM is still caught */
}

static int mode_vfork_wait(char **argv)
{
    watchdog(5, "vfork parent resuming at execve");
    char byte = 0;
    int got = read_full(atoi(argv[2]), &byte, 1);
    return got == 0 && byte == 'v' ? 16 : 1;
}

static int mode_script(int argc, char **argv)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    printf("script argc: %d\n", argc);
    check("script argv[0] is the interpreter's path", strcmp(argv[0], exe) == 0);
    for (int i = 1; i < argc; i++)
        printf("script argv[%d]: %s\n", i, argv[i][0] == '/' ? base_name(argv[i]) : argv[i]);
    return 12;
}

static int mode_env_count(void)
{
    int entries = 0;
    for (char **e = environ; e && *e; e++)
        entries++;
    printf("environment entries after execve with envp NULL: %d\n", entries);
    return 0;
}

/* Runs the exec'd program's mode, or returns -1 if argv[1] names none. */
static int child_main(int argc, char **argv)
{
    if (argc < 2)
        return -1;
    const char *mode = argv[1];
    /* Read a pending alarm before the watchdog re-arms it. */
    unsigned alarm_left = alarm(0);
    watchdog(WATCHDOG_SECS, mode);
    int code = -1;
    if (strcmp(mode, "child-args") == 0)
        code = mode_child_args(argc, argv);
    else if (strcmp(mode, "ids") == 0 && argc == 3)
        code = mode_ids(argv);
    else if (strcmp(mode, "fds") == 0 && argc == 7)
        code = mode_fds(argv);
    else if (strcmp(mode, "signals") == 0)
        code = mode_signals(alarm_left);
    else if (strcmp(mode, "state") == 0)
        code = mode_state();
    else if (strcmp(mode, "report") == 0 && argc == 4)
        code = mode_report(argv);
    else if (strcmp(mode, "big-arg") == 0 && argc == 3)
        code = mode_big_arg(argv);
    else if (strcmp(mode, "threads-after") == 0)
        code = mode_threads_after();
    else if (strcmp(mode, "thread-exec") == 0 && argc == 3)
        code = mode_thread_exec(argv);
    else if (strcmp(mode, "raise-term") == 0)
        code = mode_raise_term();
    else if (strcmp(mode, "vfork-wait") == 0 && argc == 3)
        code = mode_vfork_wait(argv);
    else if (strcmp(mode, "env-count") == 0)
        code = mode_env_count();
    else if (strncmp(mode, "script-mode", 11) == 0 || has_suffix(mode, "/skiff-exec-noarg.sh"))
        code = mode_script(argc, argv);
    if (code < 0)
        return -1;
    fflush(stdout);
    exit(code);
}

/* ====================================================================================
 * The tests, run by the original program.
 * ==================================================================================== */

static void test_args(void)
{
    watchdog(WATCHDOG_SECS, "argv and environment");
    char *argv[] = {"exec-child", "child-args", "one", "two words", NULL};
    int code = spawn_self(NULL, NULL, argv);
    print_code("child-args program", code);
    check("child-args exit status is 11", code == 11);
}

static void test_ids(void)
{
    watchdog(WATCHDOG_SECS, "pid across execve");
    int p[2];
    must("pipe", pipe(p));
    char fd_arg[16];
    snprintf(fd_arg, sizeof fd_arg, "%d", p[1]);
    char *argv[] = {"exec-ids", "ids", fd_arg, NULL};
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(p[0]);
        exec_self(argv);
    }
    close(p[1]);
    struct ids ids = {0, 0};
    int got = read_full(p[0], &ids, sizeof ids);
    close(p[0]);
    int code = reap(pid);
    check("exec'd program reported its ids", got == 0);
    check("exec'd program's getpid() equals fork's return", ids.pid == pid);
    check("exec'd program's getppid() is still the parent", ids.ppid == getpid());
    print_code("ids program", code);
}

struct fd_set_up {
    int plain, dup_cloexec, open_cloexec, setfd_cloexec, cleared;
};

static void test_fds(void)
{
    watchdog(WATCHDOG_SECS, "descriptors across execve");
    int p[2];
    must("pipe", pipe(p));
    struct fd_set_up f;
    f.plain = p[1];
    f.dup_cloexec = fcntl(p[1], F_DUPFD_CLOEXEC, 0);
    must("F_DUPFD_CLOEXEC", f.dup_cloexec);
    f.open_cloexec = open(work_path(0, "fds-file"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    must("open O_CLOEXEC", f.open_cloexec);
    f.setfd_cloexec = dup(p[1]);
    must("dup", f.setfd_cloexec);
    must("F_SETFD", fcntl(f.setfd_cloexec, F_SETFD, FD_CLOEXEC));
    f.cleared = open(work_path(0, "fds-file"), O_RDONLY | O_CLOEXEC);
    must("open O_CLOEXEC", f.cleared);
    must("F_SETFD 0", fcntl(f.cleared, F_SETFD, 0));
    int flags_ok = fcntl(f.dup_cloexec, F_GETFD) == FD_CLOEXEC &&
                   fcntl(f.open_cloexec, F_GETFD) == FD_CLOEXEC &&
                   fcntl(f.setfd_cloexec, F_GETFD) == FD_CLOEXEC && fcntl(f.cleared, F_GETFD) == 0;
    check("F_GETFD before exec shows FD_CLOEXEC", flags_ok);
    char a[5][16];
    snprintf(a[0], sizeof a[0], "%d", f.plain);
    snprintf(a[1], sizeof a[1], "%d", f.dup_cloexec);
    snprintf(a[2], sizeof a[2], "%d", f.open_cloexec);
    snprintf(a[3], sizeof a[3], "%d", f.setfd_cloexec);
    snprintf(a[4], sizeof a[4], "%d", f.cleared);
    char *argv[] = {"exec-fds", "fds", a[0], a[1], a[2], a[3], a[4], NULL};
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        close(p[0]);
        exec_self(argv);
    }
    close(p[1]);
    close(f.dup_cloexec);
    close(f.open_cloexec);
    close(f.setfd_cloexec);
    close(f.cleared);
    int code = reap(pid);
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    printf("parent read from the pipe: %s\n", n > 0 ? buf : "(nothing)");
    check("fds program saw each descriptor as expected", code == 0);
    print_code("fds program", code);
    unlink(work_path(0, "fds-file"));
}

static volatile sig_atomic_t usr1_seen;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        usr1_seen++;
}

static void prepare_signals(void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGUSR2, SIG_IGN);
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_BLOCK, &hup, NULL);
    raise(SIGHUP); /* stays pending: blocked */
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    alarm(WATCHDOG_SECS + 10); /* a pending alarm survives execve */
}

static void test_signals(void)
{
    watchdog(WATCHDOG_SECS, "signal state across execve");
    char *argv[] = {"exec-signals", "signals", NULL};
    int code = spawn_self(prepare_signals, NULL, argv);
    print_code("signals program", code);
    check("signals program saw the expected signal state", code == 0);
}

static void prepare_state(void *arg)
{
    (void)arg;
    if (chdir("/tmp") < 0)
        _exit(90);
    umask(027);
    setpgid(0, 0);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 100;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void test_state(void)
{
    watchdog(WATCHDOG_SECS, "process state across execve");
    char *argv[] = {"exec-state", "state", NULL};
    int code = spawn_self(prepare_state, NULL, argv);
    print_code("state program", code);
}

static void test_errors(void)
{
    watchdog(WATCHDOG_SECS, "execve errors");
    char *argv[] = {"exec-error", "child-args", NULL};
    char **env = child_env;
    write_file(work_path(0, "plain-0644"), "#!/bin/sh\nexit 0\n", 0644);
    write_file(work_path(1, "garbage-0755"), "this is not a program\n", 0755);
    write_file(work_path(2, "no-interpreter.sh"), "#!/tmp/skiff-exec-no-such-interpreter\n", 0755);
    write_file(work_path(3, "empty-0755"), "", 0755);

    /* State that an unsuccessful execve must leave alone. */
    int keep = open(work_path(0, "plain-0644"), O_RDONLY | O_CLOEXEC);
    must("open", keep);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    must("sigaction", sigaction(SIGUSR1, &sa, NULL));

    expect_errno("execve of a missing file", execve(work_path(4, "missing"), argv, env), ENOENT);
    expect_errno("execve of an empty path", execve("", argv, env), ENOENT);
    expect_errno("execve of a directory", execve("/tmp", argv, env), EACCES);
    expect_errno("execve of a mode 0644 file", execve(work_path(0, "plain-0644"), argv, env), EACCES);
    expect_errno("execve of a mode 0755 non-ELF file", execve(work_path(1, "garbage-0755"), argv, env),
                 ENOEXEC);
    expect_errno("execve of an empty mode 0755 file", execve(work_path(3, "empty-0755"), argv, env),
                 ENOEXEC);
    expect_errno("execve through a file as a directory", execve(work_path(5, "garbage-0755/x"), argv, env),
                 ENOTDIR);
    expect_errno("execve of a script with a missing interpreter",
                 execve(work_path(2, "no-interpreter.sh"), argv, env), ENOENT);
    /* Raw syscalls: the C libraries must not get a chance to look at the bad pointers. */
    expect_errno("execve with argv = (char **)1", syscall(SYS_execve, self_path, (char **)1, env), EFAULT);
    expect_errno("execve with envp = (char **)1", syscall(SYS_execve, self_path, argv, (char **)1), EFAULT);
    expect_errno("execve with path = (char *)1", syscall(SYS_execve, (char *)1, argv, env), EFAULT);
    char *bad_arg[] = {"exec-error", (char *)1, NULL};
    expect_errno("execve with argv[1] = (char *)1", syscall(SYS_execve, self_path, bad_arg, env), EFAULT);

    char *huge = malloc(TOO_BIG_ARG_LEN + 1);
    if (!huge) {
        printf("FATAL malloc\n");
        exit(99);
    }
    memset(huge, 'x', TOO_BIG_ARG_LEN);
    huge[TOO_BIG_ARG_LEN] = 0;
    char *huge_argv[] = {"exec-error", "child-args", huge, NULL};
    expect_errno("execve with a 200 KiB argument", execve(self_path, huge_argv, env), E2BIG);
    free(huge);

    check("close-on-exec fd still open after the unsuccessful execve calls",
          fcntl(keep, F_GETFD) == FD_CLOEXEC);
    close(keep);
    usr1_seen = 0;
    raise(SIGUSR1);
    check("SIGUSR1 handler still installed after the unsuccessful execve calls", usr1_seen == 1);
    signal(SIGUSR1, SIG_DFL);

    unlink(work_path(0, "plain-0644"));
    unlink(work_path(1, "garbage-0755"));
    unlink(work_path(2, "no-interpreter.sh"));
    unlink(work_path(3, "empty-0755"));
}

static void test_execveat_errors(void)
{
    watchdog(WATCHDOG_SECS, "execveat errors");
    char *argv[] = {"exec-error", "child-args", NULL};
    char **env = child_env;
    expect_errno("execveat(AT_FDCWD, \"\", 0)", syscall(SYS_execveat, AT_FDCWD, "", argv, env, 0), ENOENT);
    expect_errno("execveat with unknown flags", syscall(SYS_execveat, AT_FDCWD, self_path, argv, env, 0x1),
                 EINVAL);
    expect_errno("execveat with a closed dirfd and a relative path",
                 syscall(SYS_execveat, 999, "exec", argv, env, 0), EBADF);
    int file = open(self_path, O_RDONLY | O_CLOEXEC);
    must("open self", file);
    expect_errno("execveat with a file as dirfd and a relative path",
                 syscall(SYS_execveat, file, "exec", argv, env, 0), ENOTDIR);
    close(file);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    must("open /tmp", dir);
    expect_errno("execveat(AT_EMPTY_PATH) on a directory fd",
                 syscall(SYS_execveat, dir, "", argv, env, AT_EMPTY_PATH), EACCES);
    close(dir);
    const char *link = work_path(0, "link-to-self");
    must("symlink", symlink(self_path, link));
    expect_errno("execveat(AT_SYMLINK_NOFOLLOW) of a symlink",
                 syscall(SYS_execveat, AT_FDCWD, link, argv, env, AT_SYMLINK_NOFOLLOW), ELOOP);
    unlink(link);
}

static void test_scripts(void)
{
    watchdog(WATCHDOG_SECS, "#! scripts");
    char line[PATH_MAX + 64];
    const char *script = work_path(0, "skiff-exec-script.sh");
    snprintf(line, sizeof line, "#!%s script-mode\necho not reached\n", self_path);
    write_file(script, line, 0755);
    const char *spaces = work_path(1, "skiff-exec-spaces.sh");
    snprintf(line, sizeof line, "#! \t%s  script-mode  two words \t\n", self_path);
    write_file(spaces, line, 0755);
    const char *noarg = work_path(2, "skiff-exec-noarg.sh");
    snprintf(line, sizeof line, "#!%s\n", self_path);
    write_file(noarg, line, 0755);
    const char *nested = work_path(3, "skiff-exec-nested.sh");
    snprintf(line, sizeof line, "#!%s inner\n", script);
    write_file(nested, line, 0755);

    struct {
        const char *label;
        const char *path;
        char *argv[3];
    } runs[] = {
        {"script", script, {"scriptname", "a1", NULL}},
        {"script with blanks in its #! line", spaces, {"spaces", "b1", NULL}},
        {"script without an interpreter argument", noarg, {"noarg", "c1", NULL}},
        {"script whose interpreter is a script", nested, {"nested", "d1", NULL}},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        printf("-- %s\n", runs[i].label);
        pid_t pid = fork_flushed();
        if (pid == 0) {
            child_guard();
            execve(runs[i].path, runs[i].argv, child_env);
            printf("FATAL execve of the script: %s\n", errno_name(errno));
            fflush(stdout);
            _exit(127);
        }
        int code = reap(pid);
        print_code(runs[i].label, code);
        if (code != 12)
            checks_failed++;
    }
    unlink(script);
    unlink(spaces);
    unlink(noarg);
    unlink(nested);
}

static void prepare_chdir_to_self(void *arg)
{
    (void)arg;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self_path);
    *strrchr(dir, '/') = 0;
    if (chdir(dir[0] ? dir : "/") < 0)
        _exit(90);
    char rel[PATH_MAX + 2];
    snprintf(rel, sizeof rel, "./%s", base_name(self_path));
    char *argv[] = {"exec-relative", "report", "execve of a relative path", "20", NULL};
    fflush(stdout);
    execve(rel, argv, child_env);
    _exit(127);
}

static void prepare_symlink(void *arg)
{
    char *argv[] = {"exec-symlink", "report", "execve through a symlink", "21", NULL};
    fflush(stdout);
    execve((const char *)arg, argv, child_env);
    _exit(127);
}

static void test_execveat(void)
{
    watchdog(WATCHDOG_SECS, "execveat");
    int code;
    pid_t pid;

    char *fdcwd_argv[] = {"exec-at", "report", "execveat(AT_FDCWD, path, 0)", "13", NULL};
    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        syscall(SYS_execveat, AT_FDCWD, self_path, fdcwd_argv, child_env, 0);
        _exit(127);
    }
    code = reap(pid);
    print_code("execveat(AT_FDCWD, path, 0)", code);
    if (code != 13)
        checks_failed++;

    int fd = open(self_path, O_RDONLY);
    must("open self O_RDONLY", fd);
    char *empty_argv[] = {"exec-fd", "report", "execveat(fd, \"\", AT_EMPTY_PATH)", "14", NULL};
    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        syscall(SYS_execveat, fd, "", empty_argv, child_env, AT_EMPTY_PATH);
        _exit(127);
    }
    code = reap(pid);
    close(fd);
    print_code("execveat(fd, \"\", AT_EMPTY_PATH)", code);
    if (code != 14)
        checks_failed++;

    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self_path);
    *strrchr(dir, '/') = 0;
    int dirfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY);
    must("open the program's directory", dirfd);
    char *dirfd_argv[] = {"exec-dirfd", "report", "execveat(dirfd, name, 0)", "15", NULL};
    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        syscall(SYS_execveat, dirfd, base_name(self_path), dirfd_argv, child_env, 0);
        _exit(127);
    }
    code = reap(pid);
    close(dirfd);
    print_code("execveat(dirfd, name, 0)", code);
    if (code != 15)
        checks_failed++;

    code = spawn_self(prepare_chdir_to_self, NULL, NULL);
    print_code("execve of a relative path", code);
    if (code != 20)
        checks_failed++;

    const char *link = work_path(0, "link-to-self");
    must("symlink", symlink(self_path, link));
    code = spawn_self(prepare_symlink, (void *)link, NULL);
    unlink(link);
    print_code("execve through a symlink", code);
    if (code != 21)
        checks_failed++;
}

static void test_big_arg_and_null_env(void)
{
    watchdog(WATCHDOG_SECS, "big argument, NULL envp");
    char *big = malloc(BIG_ARG_LEN + 1);
    if (!big) {
        printf("FATAL malloc\n");
        exit(99);
    }
    for (size_t i = 0; i < BIG_ARG_LEN; i++)
        big[i] = big_pattern(i);
    big[BIG_ARG_LEN] = 0;
    char *argv[] = {"exec-big", "big-arg", big, NULL};
    int code = spawn_self(NULL, NULL, argv);
    free(big);
    print_code("big-arg program", code);
    if (code != 0)
        checks_failed++;

    char *env_argv[] = {"exec-env", "env-count", NULL};
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        syscall(SYS_execve, self_path, env_argv, NULL);
        _exit(127);
    }
    code = reap(pid);
    print_code("env-count program", code);
    if (code != 0)
        checks_failed++;
}

static int vfork_exec(char *const argv[])
{
    fflush(stdout);
    pid_t pid = vfork();
    if (pid == 0) {
        execve(self_path, argv, child_env);
        _exit(127);
    }
    return pid;
}

static void test_vfork(void)
{
    watchdog(WATCHDOG_SECS, "vfork + execve");
    int p[2];
    must("pipe", pipe(p));
    must("F_SETFD", fcntl(p[1], F_SETFD, FD_CLOEXEC));
    char fd_arg[16];
    snprintf(fd_arg, sizeof fd_arg, "%d", p[0]);
    char *argv[] = {"exec-vfork", "vfork-wait", fd_arg, NULL};
    pid_t pid = vfork_exec(argv);
    must("vfork", pid);
    /* The exec'd child waits for this byte: the parent must have resumed at execve. */
    check("vfork parent resumed while the exec'd child runs", write(p[1], "v", 1) == 1);
    close(p[0]);
    close(p[1]);
    int code = reap(pid);
    print_code("vfork + execve child", code);
    check("vfork + execve child exit status is 16", code == 16);
}

static int hold_pipe[2];

static void *blocker(void *arg)
{
    long kind = (long)arg;
    char byte;
    for (;;) {
        if (kind == 0)
            pause();
        else if (kind == 1)
            sleep_ms(1000);
        else if (read(hold_pipe[0], &byte, 1) <= 0)
            pause();
    }
    return NULL;
}

static void start_blockers(void)
{
    if (pipe(hold_pipe) < 0)
        _exit(91);
    for (long kind = 0; kind < 3; kind++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int rc = pthread_create(&t, &attr, blocker, (void *)kind);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            _exit(92);
    }
    sleep_ms(20); /* let them block */
}

static void *exec_from_thread(void *arg)
{
    char pid_arg[16];
    snprintf(pid_arg, sizeof pid_arg, "%d", (int)(intptr_t)arg);
    char *argv[] = {"exec-thread", "thread-exec", pid_arg, NULL};
    fflush(stdout);
    exec_self(argv);
}

static void test_threads(void)
{
    watchdog(WATCHDOG_SECS, "execve in a threaded process");
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        start_blockers();
        printf("threads before exec: %d\n", thread_count());
        char *missing[] = {"exec-missing", "child-args", NULL};
        expect_errno("unsuccessful execve in a threaded process",
                     execve(work_path(0, "missing"), missing, child_env), ENOENT);
        printf("threads after the unsuccessful execve: %d\n", thread_count());
        char *argv[] = {"exec-threads", "threads-after", NULL};
        fflush(stdout);
        exec_self(argv);
    }
    int code = reap(pid);
    print_code("exec from the main thread", code);
    check("exec from the main thread exit status is 17", code == 17);

    pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        start_blockers();
        pthread_t t;
        if (pthread_create(&t, NULL, exec_from_thread, (void *)(intptr_t)getpid()) != 0)
            _exit(93);
        for (;;)
            pause();
    }
    code = reap(pid);
    print_code("exec from another thread", code);
    check("exec from another thread exit status is 18", code == 18);
}

static void prepare_term_handler(void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
}

static void test_killed(void)
{
    watchdog(WATCHDOG_SECS, "exec'd program killed by a signal");
    char *argv[] = {"exec-term", "raise-term", NULL};
    pid_t pid = fork_flushed();
    if (pid == 0) {
        child_guard();
        prepare_term_handler(NULL);
        exec_self(argv);
    }
    int status = 0;
    check("waitpid returns the exec'd child", wait_for(pid, &status, 0) == pid);
    check("exec'd child: WIFSIGNALED", WIFSIGNALED(status));
    const char *how = WIFSIGNALED(status) ? signal_name(WTERMSIG(status))
                      : WIFEXITED(status) ? "exited"
                                          : "other";
    printf("exec'd child raising SIGTERM: %s\n", how);
    check("exec'd child: WTERMSIG is SIGTERM", WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && child_main(argc, argv) < 0) {
        printf("FATAL unknown mode %s\n", argv[1]);
        return 2;
    }
    watchdog(WATCHDOG_SECS, "start-up");
    signal(SIGPIPE, SIG_IGN); /* a dead reader shows as a failed check, not a kill */

    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    must("readlink /proc/self/exe", n);
    self_path[n] = 0;
    check("own path from /proc/self/exe is absolute", self_path[0] == '/');
    snprintf(self_env, sizeof self_env, "SKIFF_EXEC_SELF=%s", self_path);
    if (!mkdtemp(work_dir)) {
        printf("FATAL mkdtemp: %s\n", errno_name(errno));
        return 99;
    }

    test_args();
    test_ids();
    test_fds();
    test_signals();
    test_state();
    test_errors();
    test_execveat_errors();
    test_scripts();
    test_execveat();
    test_big_arg_and_null_env();
    test_vfork();
    test_threads();
    test_killed();
    rmdir(work_dir);
    watchdog(0, NULL);
    if (checks_failed)
        printf("exec: %d failed checks\n", checks_failed);
    else
        printf("exec: done\n");
    return checks_failed ? 1 : 0;
}
