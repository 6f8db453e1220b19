/*
 * signals: signal delivery as Linux does it. Self-sent signals (raise, kill, tgkill,
 * pthread_kill, sigqueue) with their siginfo; the ucontext a handler sees and may
 * change; masks, pending sets and sigsuspend; SA_RESETHAND, SA_NODEFER, SA_RESTART,
 * SA_ONSTACK and sigaltstack; synchronous faults (SIGSEGV, SIGFPE, SIGILL) recovered
 * with siglongjmp or by editing the context; FPU state across handlers; alarm,
 * setitimer and POSIX timers (SIGEV_SIGNAL, SIGEV_THREAD_ID); blocking calls
 * interrupted by signals; sigtimedwait.
 *
 * Output is deterministic: only fixed labels, errno names and booleans, printed by
 * the main thread. Hangs are caught by a watchdog *thread* (SIGALRM is under test, so
 * the alarm() watchdog of common.h cannot be used): it blocks every signal, polls a
 * per-phase deadline, and on expiry prints "FATAL watchdog: <phase> did not finish"
 * and exits 98. The main thread blocks every signal before creating any thread, so
 * process-directed signals always reach the main thread.
 */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define PHASE_SECS 20

static pid_t current_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- watchdog thread ---------------------------------------------------------------- */

static atomic_llong phase_deadline_ns;
static const char *volatile phase_name = "start-up";

static void phase(const char *name)
{
    phase_name = name;
    atomic_store(&phase_deadline_ns, now_ns() + (int64_t)PHASE_SECS * 1000000000);
}

static void *watchdog_thread(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
        long long deadline = atomic_load(&phase_deadline_ns);
        if (deadline != 0 && now_ns() > deadline) {
            const char *name = phase_name;
            printf("FATAL watchdog: %s did not finish\n", name);
            fflush(stdout);
            _exit(98);
        }
    }
    return NULL;
}

/* ---- shared handler state ----------------------------------------------------------- */

#define MAX_RECORDS 16

struct record {
    int signo;
    int code;
    pid_t tid; /* thread the handler ran on */
    pid_t sender_pid;
    uid_t sender_uid;
    int value;
};

static struct record records[MAX_RECORDS];
static atomic_int record_count;

static void reset_records(void)
{
    memset(records, 0, sizeof records);
    atomic_store(&record_count, 0);
}

static void recording_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    int i = atomic_fetch_add(&record_count, 1);
    if (i < MAX_RECORDS) {
        records[i].signo = sig == info->si_signo ? sig : -1;
        records[i].code = info->si_code;
        records[i].tid = current_tid();
        records[i].sender_pid = info->si_pid;
        records[i].sender_uid = info->si_uid;
        records[i].value = info->si_value.sival_int;
    }
}

static void install(int sig, void (*action)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = action;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    must("sigaction", sigaction(sig, &sa, NULL));
}

static void install_plain(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    must("sigaction", sigaction(sig, &sa, NULL));
}

static void set_default(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
}

static void unblock(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void block(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int is_blocked(int sig)
{
    sigset_t set;
    pthread_sigmask(SIG_BLOCK, NULL, &set);
    return sigismember(&set, sig) == 1;
}

static int is_pending(int sig)
{
    sigset_t set;
    sigpending(&set);
    return sigismember(&set, sig) == 1;
}

static const char *code_name(int code)
{
    switch (code) {
    case SI_USER: return "SI_USER";
    case SI_TKILL: return "SI_TKILL";
    case SI_QUEUE: return "SI_QUEUE";
    case SI_TIMER: return "SI_TIMER";
    case SI_KERNEL: return "SI_KERNEL";
    default: return "other";
    }
}

static void cancel_itimer(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
}

static void set_itimer_ms(long first_ms, long interval_ms)
{
    struct itimerval it = {{interval_ms / 1000, (interval_ms % 1000) * 1000},
                           {first_ms / 1000, (first_ms % 1000) * 1000}};
    must("setitimer", setitimer(ITIMER_REAL, &it, NULL));
}

/* ---- sigaction and mask basics ------------------------------------------------------ */

static void test_basics(void)
{
    phase("sigaction basics");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    expect_errno("sigaction SIGKILL", sigaction(SIGKILL, &sa, NULL), EINVAL);
    expect_errno("sigaction SIGSTOP", sigaction(SIGSTOP, &sa, NULL), EINVAL);
    expect_errno("sigaction signal 0", sigaction(0, &sa, NULL), EINVAL);
    expect_errno("sigaction signal 65", sigaction(65, &sa, NULL), EINVAL);
    struct sigaction old;
    expect_errno("sigaction query SIGKILL", sigaction(SIGKILL, NULL, &old), 0);
    check("SIGKILL disposition is SIG_DFL", old.sa_handler == SIG_DFL);
    expect_errno("kill(getpid(), 0)", kill(getpid(), 0), 0);
    expect_errno("kill bad signal", kill(getpid(), 1000), EINVAL);

    install(SIGUSR1, recording_handler, SA_RESTART);
    memset(&old, 0, sizeof old);
    sigaction(SIGUSR1, NULL, &old);
    check("sigaction query returns the handler", old.sa_sigaction == recording_handler);
    check("sigaction query keeps SA_SIGINFO|SA_RESTART",
          (old.sa_flags & (SA_SIGINFO | SA_RESTART)) == (SA_SIGINFO | SA_RESTART));

    sigset_t all, got, saved;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, NULL, &saved);
    sigprocmask(SIG_BLOCK, &all, NULL);
    sigprocmask(SIG_BLOCK, NULL, &got);
    check("SIGKILL cannot be blocked", sigismember(&got, SIGKILL) == 0);
    check("SIGSTOP cannot be blocked", sigismember(&got, SIGSTOP) == 0);
    check("SIGUSR1 can be blocked", sigismember(&got, SIGUSR1) == 1);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    expect_errno("sigprocmask bad how", sigprocmask(12345, &all, NULL), EINVAL);
}

/* ---- self-sent signals and their siginfo -------------------------------------------- */

static volatile sig_atomic_t plain_count;

static void plain_handler(int sig)
{
    (void)sig;
    plain_count++;
}

static void test_self_sent(void)
{
    phase("self-sent signals");
    unblock(SIGUSR1);

    install_plain(SIGUSR1, plain_handler, 0);
    plain_count = 0;
    expect_errno("raise with plain handler", raise(SIGUSR1), 0);
    check("plain handler ran once before raise returned", plain_count == 1);

    install(SIGUSR1, recording_handler, 0);
    pid_t pid = getpid(), tid = current_tid();

    reset_records();
    raise(SIGUSR1);
    check("raise: handler ran once", atomic_load(&record_count) == 1);
    printf("raise si_code: %s\n", code_name(records[0].code));
    check("raise si_code is SI_TKILL", records[0].code == SI_TKILL);
    check("raise si_signo matches", records[0].signo == SIGUSR1);
    check("raise si_pid is ours", records[0].sender_pid == pid);

    reset_records();
    expect_errno("kill(getpid(), SIGUSR1)", kill(pid, SIGUSR1), 0);
    check("kill: handler ran before kill returned", atomic_load(&record_count) == 1);
    printf("kill si_code: %s\n", code_name(records[0].code));
    check("kill si_code is SI_USER", records[0].code == SI_USER);
    check("kill si_pid is ours", records[0].sender_pid == pid);
    check("kill si_uid is ours", records[0].sender_uid == getuid());
    check("kill handled on the main thread", records[0].tid == tid);

    reset_records();
    expect_errno("tgkill self", syscall(SYS_tgkill, pid, tid, SIGUSR1), 0);
    check("tgkill: handler ran once", atomic_load(&record_count) == 1);
    printf("tgkill si_code: %s\n", code_name(records[0].code));
    check("tgkill si_code is SI_TKILL", records[0].code == SI_TKILL);
    check("tgkill handled on the main thread", records[0].tid == tid);

    expect_errno("tgkill wrong tgid", syscall(SYS_tgkill, pid + 100000, tid, SIGUSR1), ESRCH);
    expect_errno("tgkill missing tid", syscall(SYS_tgkill, pid, 0x3ffffff, SIGUSR1), ESRCH);
    block(SIGUSR1);
}

/* ---- signals to another thread ------------------------------------------------------ */

static atomic_int target_ready;
static atomic_int target_tid;

static void *signal_target(void *arg)
{
    (void)arg;
    /* Everything is blocked (inherited); SIGUSR2 is accepted only inside sigsuspend. */
    atomic_store(&target_tid, current_tid());
    atomic_store(&target_ready, 1);
    sigset_t wait_mask;
    sigfillset(&wait_mask);
    sigdelset(&wait_mask, SIGUSR2);
    while (atomic_load(&record_count) < 2)
        sigsuspend(&wait_mask);
    return NULL;
}

static void test_other_thread(void)
{
    phase("signals to another thread");
    install(SIGUSR2, recording_handler, 0);
    reset_records();
    atomic_store(&target_ready, 0);
    pthread_t thread;
    if (pthread_create(&thread, NULL, signal_target, NULL) != 0) {
        printf("FATAL pthread_create for the signal target\n");
        exit(99);
    }
    while (!atomic_load(&target_ready))
        sched_yield();
    expect_error("pthread_kill SIGUSR2", pthread_kill(thread, SIGUSR2), 0);
    while (atomic_load(&record_count) < 1)
        sleep_ms(1);
    expect_errno("tgkill other thread SIGUSR2",
                 syscall(SYS_tgkill, getpid(), atomic_load(&target_tid), SIGUSR2), 0);
    pthread_join(thread, NULL);
    check("both signals handled", atomic_load(&record_count) == 2);
    check("pthread_kill handled on the target thread", records[0].tid == atomic_load(&target_tid));
    check("tgkill handled on the target thread", records[1].tid == atomic_load(&target_tid));
    printf("pthread_kill si_code: %s\n", code_name(records[0].code));
    printf("tgkill to thread si_code: %s\n", code_name(records[1].code));
    check("main thread never handled them", records[0].tid != current_tid());
}

/* ---- the ucontext a handler sees ---------------------------------------------------- */

static struct {
    int rip_nonzero;
    int rsp_nonzero;
    int sig_blocked_inside;
    int sig_in_saved_mask;
    int aligned;
} uc_seen;

static void ucontext_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)info;
    ucontext_t *uc = ctx;
    /* gcc sets up rbp here: rbp = entry rsp - 8, so 16-byte alignment of rbp means the
     * kernel entered the handler with rsp % 16 == 8, as after a call. */
    uc_seen.aligned = ((uintptr_t)__builtin_frame_address(0) & 15) == 0;
    uc_seen.rip_nonzero = uc->uc_mcontext.gregs[REG_RIP] != 0;
    uc_seen.rsp_nonzero = uc->uc_mcontext.gregs[REG_RSP] != 0;
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    uc_seen.sig_blocked_inside = sigismember(&now, sig) == 1;
    uc_seen.sig_in_saved_mask = sigismember(&uc->uc_sigmask, sig) == 1;
    /* The mask restored by sigreturn comes from the frame: add SIGUSR2 to it. */
    sigaddset(&uc->uc_sigmask, SIGUSR2);
}

static struct {
    int code;
    int addr_is_rip;
} ill_seen;

static void sigill_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    ucontext_t *uc = ctx;
    ill_seen.code = info->si_code;
    ill_seen.addr_is_rip = (uintptr_t)info->si_addr == (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uc->uc_mcontext.gregs[REG_RIP] += 2; /* skip the ud2 */
    uc->uc_mcontext.gregs[REG_RAX] = 42;
}

static void test_ucontext(void)
{
    phase("ucontext");
    install(SIGUSR1, ucontext_handler, 0);
    unblock(SIGUSR1);
    unblock(SIGUSR2);
    raise(SIGUSR1);
    check("handler entered with an aligned stack", uc_seen.aligned);
    check("uc_mcontext RIP is non-zero", uc_seen.rip_nonzero);
    check("uc_mcontext RSP is non-zero", uc_seen.rsp_nonzero);
    check("signal blocked while its handler runs", uc_seen.sig_blocked_inside);
    check("uc_sigmask holds the mask before delivery", !uc_seen.sig_in_saved_mask);
    check("sigreturn restored the mask edited in uc_sigmask", is_blocked(SIGUSR2));
    check("and unblocked the handled signal again", !is_blocked(SIGUSR1));
    block(SIGUSR1);

    install(SIGILL, sigill_handler, 0);
    unblock(SIGILL); /* a blocked synchronous fault would kill the process */
    long rax;
    __asm__ volatile("xor %%eax, %%eax\n\tud2\n\tmov %%rax, %0" : "=r"(rax) : : "rax", "memory");
    check("SIGILL handler skipped ud2 by editing RIP", 1);
    check("sigreturn loaded RAX from the edited context", rax == 42);
    printf("ud2 si_code: %s\n", ill_seen.code == ILL_ILLOPN ? "ILL_ILLOPN" : "other");
    check("ud2 si_addr is the faulting RIP", ill_seen.addr_is_rip);
    set_default(SIGILL);
}

/* ---- blocked, pending, unblocked ---------------------------------------------------- */

static void test_pending(void)
{
    phase("blocked then unblocked");
    install(SIGUSR1, recording_handler, 0);
    block(SIGUSR1);
    reset_records();
    raise(SIGUSR1);
    raise(SIGUSR1);
    check("blocked signal is pending", is_pending(SIGUSR1));
    check("blocked signal's handler has not run", atomic_load(&record_count) == 0);
    unblock(SIGUSR1);
    check("unblocking delivers a standard signal exactly once", atomic_load(&record_count) == 1);
    check("nothing pending afterwards", !is_pending(SIGUSR1));
    block(SIGUSR1);

    /* Real-time signals queue, each with its value, in order. */
    int rt = SIGRTMIN + 2;
    install(rt, recording_handler, 0);
    block(rt);
    reset_records();
    for (int v = 1; v <= 3; v++)
        expect_errno("sigqueue real-time signal", sigqueue(getpid(), rt, (union sigval){.sival_int = v}), 0);
    check("queued real-time signal is pending", is_pending(rt));
    unblock(rt);
    check("three queued real-time signals delivered", atomic_load(&record_count) == 3);
    int in_order = 1;
    for (int i = 0; i < 3; i++)
        if (records[i].value != i + 1 || records[i].code != SI_QUEUE || records[i].signo != rt)
            in_order = 0;
    check("in order, with si_value and SI_QUEUE", in_order);
    block(rt);
    set_default(rt);
}

/* ---- SA_RESETHAND and SA_NODEFER ---------------------------------------------------- */

static volatile sig_atomic_t depth, max_depth, calls;

static void reentrant_handler(int sig)
{
    calls++;
    if (++depth > max_depth)
        max_depth = depth;
    if (calls == 1)
        raise(sig); /* re-raise from inside the handler */
    depth--;
}

static void test_flags(void)
{
    phase("SA_RESETHAND and SA_NODEFER");
    unblock(SIGUSR1);
    install_plain(SIGUSR1, plain_handler, SA_RESETHAND);
    plain_count = 0;
    raise(SIGUSR1);
    check("SA_RESETHAND handler ran once", plain_count == 1);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    check("SA_RESETHAND left the disposition SIG_DFL", now.sa_handler == SIG_DFL);

    install_plain(SIGUSR1, reentrant_handler, SA_NODEFER);
    depth = max_depth = calls = 0;
    raise(SIGUSR1);
    printf("SA_NODEFER: calls %d, max depth %d\n", (int)calls, (int)max_depth);
    check("SA_NODEFER nests the re-raised signal", calls == 2 && max_depth == 2);

    install_plain(SIGUSR1, reentrant_handler, 0);
    depth = max_depth = calls = 0;
    raise(SIGUSR1);
    printf("default: calls %d, max depth %d\n", (int)calls, (int)max_depth);
    check("without SA_NODEFER the re-raised signal waits", calls == 2 && max_depth == 1);
    block(SIGUSR1);
}

/* ---- synchronous faults ------------------------------------------------------------- */

static sigjmp_buf fault_jump;
static struct {
    int signo;
    int code;
    uintptr_t addr;
    int rip_nonzero;
} fault;

static void fault_handler(int sig, siginfo_t *info, void *ctx)
{
    ucontext_t *uc = ctx;
    fault.signo = sig;
    fault.code = info->si_code;
    fault.addr = (uintptr_t)info->si_addr;
    fault.rip_nonzero = uc->uc_mcontext.gregs[REG_RIP] != 0;
    siglongjmp(fault_jump, 1);
}

static const char *segv_code_name(int code)
{
    return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

static void test_faults(void)
{
    phase("synchronous faults");
    install(SIGSEGV, fault_handler, 0);
    install(SIGFPE, fault_handler, 0);
    unblock(SIGSEGV); /* a blocked synchronous fault would kill the process */
    unblock(SIGFPE);
    long page_size = sysconf(_SC_PAGESIZE);
    unsigned char *page = mmap(NULL, page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        printf("FATAL mmap PROT_NONE: %s\n", errno_name(errno));
        exit(99);
    }

    static const struct {
        const char *label;
        long offset;
    } writes[] = {{"write to PROT_NONE page", 0}, {"write inside PROT_NONE page", 100}};
    for (int i = 0; i < 2; i++) {
        memset(&fault, 0, sizeof fault);
        volatile unsigned char *target = page + writes[i].offset;
        int caught = 0;
        if (sigsetjmp(fault_jump, 1) == 0)
            *target = 1;
        else
            caught = 1;
        char label[96];
        snprintf(label, sizeof label, "%s caught", writes[i].label);
        check(label, caught && fault.signo == SIGSEGV);
        printf("%s si_code: %s\n", writes[i].label, segv_code_name(fault.code));
        snprintf(label, sizeof label, "%s si_addr exact", writes[i].label);
        check(label, fault.addr == (uintptr_t)target);
        snprintf(label, sizeof label, "%s RIP in context", writes[i].label);
        check(label, fault.rip_nonzero);
    }

    memset(&fault, 0, sizeof fault);
    mprotect(page, page_size, PROT_READ);
    int caught = 0;
    if (sigsetjmp(fault_jump, 1) == 0)
        *(volatile unsigned char *)page = 1;
    else
        caught = 1;
    check("write to read-only page caught", caught && fault.signo == SIGSEGV);
    printf("write to read-only page si_code: %s\n", segv_code_name(fault.code));
    check("read-only page still readable", *(volatile unsigned char *)page == 0);

    memset(&fault, 0, sizeof fault);
    caught = 0;
    volatile int *volatile null_pointer = NULL;
    if (sigsetjmp(fault_jump, 1) == 0)
        (void)*null_pointer;
    else
        caught = 1;
    check("read of NULL caught", caught && fault.signo == SIGSEGV);
    printf("read of NULL si_code: %s\n", segv_code_name(fault.code));
    check("read of NULL si_addr is 0", fault.addr == 0);
    munmap(page, page_size);

    memset(&fault, 0, sizeof fault);
    caught = 0;
    volatile int divisor = 0, dividend = 7, quotient = 0;
    if (sigsetjmp(fault_jump, 1) == 0)
        quotient = dividend / divisor;
    else
        caught = 1;
    check("integer divide by zero caught", caught && fault.signo == SIGFPE && quotient == 0);
    printf("divide by zero si_code: %s\n", fault.code == FPE_INTDIV ? "FPE_INTDIV" : "other");
    check("divide by zero si_addr non-zero", fault.addr != 0);
    check("SIGSEGV unblocked again after siglongjmp", !is_blocked(SIGSEGV));
    set_default(SIGSEGV);
    set_default(SIGFPE);
}

/* ---- sigaltstack ------------------------------------------------------------------- */

#define ALT_SIZE (64 * 1024)

static struct {
    int on_alt;
    int ss_onstack;
    int change_refused;
} alt_seen;
static unsigned char *alt_base;

static void altstack_handler(int sig)
{
    (void)sig;
    volatile char local = 0;
    uintptr_t at = (uintptr_t)&local;
    alt_seen.on_alt = at >= (uintptr_t)alt_base && at < (uintptr_t)alt_base + ALT_SIZE;
    stack_t now;
    alt_seen.ss_onstack = sigaltstack(NULL, &now) == 0 && (now.ss_flags & SS_ONSTACK) != 0;
    stack_t other = {.ss_sp = alt_base, .ss_size = ALT_SIZE, .ss_flags = 0};
    alt_seen.change_refused = sigaltstack(&other, NULL) == -1 && errno == EPERM;
}

/* Stack overflow in a thread, caught on that thread's alternate stack. */
static sigjmp_buf overflow_jump;
static unsigned char *overflow_alt;
static volatile int overflow_on_alt;

static void overflow_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)info;
    (void)ctx;
    volatile char local = 0;
    uintptr_t at = (uintptr_t)&local;
    overflow_on_alt = at >= (uintptr_t)overflow_alt && at < (uintptr_t)overflow_alt + ALT_SIZE;
    siglongjmp(overflow_jump, 1);
}

static volatile int never; /* keeps the recursion formally finite */

static __attribute__((noinline)) long recurse(long n)
{
    if (never)
        return 0;
    volatile char frame[512];
    frame[0] = (char)n;
    frame[511] = (char)n;
    return recurse(n + 1) + frame[0] + frame[511];
}

static void *overflow_thread(void *arg)
{
    (void)arg;
    overflow_alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (overflow_alt == MAP_FAILED)
        return (void *)0;
    stack_t ss = {.ss_sp = overflow_alt, .ss_size = ALT_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        return (void *)0;
    unblock(SIGSEGV);
    long caught = 0;
    if (sigsetjmp(overflow_jump, 1) == 0)
        recurse(0);
    else
        caught = 1;
    return (void *)caught;
}

static void test_altstack(void)
{
    phase("sigaltstack");
    stack_t small = {.ss_sp = malloc(1024), .ss_size = 1024, .ss_flags = 0};
    expect_errno("sigaltstack too small", sigaltstack(&small, NULL), ENOMEM);
    free(small.ss_sp);
    stack_t bad_flags = {.ss_sp = NULL, .ss_size = ALT_SIZE, .ss_flags = 0x1234};
    expect_errno("sigaltstack bad flags", sigaltstack(&bad_flags, NULL), EINVAL);

    alt_base = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    stack_t ss = {.ss_sp = alt_base, .ss_size = ALT_SIZE, .ss_flags = 0};
    expect_errno("sigaltstack set", sigaltstack(&ss, NULL), 0);
    stack_t now;
    sigaltstack(NULL, &now);
    check("sigaltstack query returns it", now.ss_sp == alt_base && now.ss_size == ALT_SIZE &&
                                              now.ss_flags == 0);

    unblock(SIGUSR1);
    install_plain(SIGUSR1, altstack_handler, SA_ONSTACK);
    memset(&alt_seen, 0, sizeof alt_seen);
    raise(SIGUSR1);
    check("SA_ONSTACK handler runs on the alternate stack", alt_seen.on_alt);
    check("sigaltstack reports SS_ONSTACK inside it", alt_seen.ss_onstack);
    check("changing the active alternate stack is EPERM", alt_seen.change_refused);
    sigaltstack(NULL, &now);
    check("not SS_ONSTACK after the handler returned", (now.ss_flags & SS_ONSTACK) == 0);

    install_plain(SIGUSR1, altstack_handler, 0);
    memset(&alt_seen, 0, sizeof alt_seen);
    raise(SIGUSR1);
    check("handler without SA_ONSTACK stays on the normal stack", !alt_seen.on_alt);
    block(SIGUSR1);

    stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    expect_errno("sigaltstack disable", sigaltstack(&off, NULL), 0);
    sigaltstack(NULL, &now);
    check("query shows SS_DISABLE", (now.ss_flags & SS_DISABLE) != 0);
    munmap(alt_base, ALT_SIZE);

    install(SIGSEGV, overflow_handler, SA_ONSTACK);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t thread;
    void *caught = NULL;
    if (pthread_create(&thread, &attr, overflow_thread, NULL) == 0)
        pthread_join(thread, &caught);
    pthread_attr_destroy(&attr);
    check("thread stack overflow caught as SIGSEGV", caught == (void *)1);
    check("and handled on the thread's alternate stack", overflow_on_alt);
    set_default(SIGSEGV);
}

/* ---- FPU state across handlers ------------------------------------------------------ */

static unsigned handler_mxcsr;

static void clobber_fpu(void)
{
    static const double junk[2] = {-12345.678, 9.75e300};
    unsigned rz = 0x7f80; /* all exceptions masked, round toward zero */
    __asm__ volatile("ldmxcsr %0" : : "m"(rz));
    __asm__ volatile("movupd (%0), %%xmm0\n\tmovupd (%0), %%xmm1\n\tmovupd (%0), %%xmm2\n\t"
                     "movupd (%0), %%xmm3\n\tmovupd (%0), %%xmm4\n\tmovupd (%0), %%xmm5\n\t"
                     "movupd (%0), %%xmm6\n\tmovupd (%0), %%xmm7\n\tmovupd (%0), %%xmm8\n\t"
                     "movupd (%0), %%xmm9\n\tmovupd (%0), %%xmm10\n\tmovupd (%0), %%xmm11\n\t"
                     "movupd (%0), %%xmm12\n\tmovupd (%0), %%xmm13\n\tmovupd (%0), %%xmm14\n\t"
                     "movupd (%0), %%xmm15\n\t"
                     :
                     : "r"(junk)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    /* Some x87 work too. */
    volatile long double x = 3.0L;
    x = x * x / 7.0L;
    (void)x;
}

static void fpu_handler(int sig)
{
    (void)sig;
    unsigned mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    handler_mxcsr = mxcsr;
    volatile double d = 1.0;
    for (int i = 0; i < 100; i++)
        d = d * 1.5 + 0.25;
    clobber_fpu();
}

static volatile sig_atomic_t fp_ticks;

static void fp_tick_handler(int sig)
{
    (void)sig;
    fp_ticks++;
    clobber_fpu();
}

static __attribute__((noinline)) double fp_block(double seed)
{
    double a = seed, b = seed * 0.5, c = 1.0 / seed, d = seed + 3.0;
    for (int i = 1; i <= 200; i++) {
        a = a * 1.0000001 + b / i;
        b = b * 0.9999999 + c;
        c = c + d / (i + 1.0);
        d = d * 0.999 + a * 1e-9;
    }
    return a + b + c + d;
}

static void test_fpu(void)
{
    phase("FPU state across handlers");
    install_plain(SIGUSR1, fpu_handler, 0);
    unblock(SIGUSR1);
    unsigned main_mxcsr = 0x5f80; /* round down: not the default */
    __asm__ volatile("ldmxcsr %0" : : "m"(main_mxcsr));

    double in[16], out[16];
    for (int i = 0; i < 16; i++)
        in[i] = 1.25 * (i + 1);
    long rax = SYS_tgkill, self_pid = getpid(), self_tid = current_tid();
    /* No calls between these and the asm: they must stay in their registers. */
    register long pid __asm__("rdi") = self_pid;
    register long tid __asm__("rsi") = self_tid;
    register long sig __asm__("rdx") = SIGUSR1;
    __asm__ volatile("movsd 0(%[in]), %%xmm0\n\tmovsd 8(%[in]), %%xmm1\n\t"
                     "movsd 16(%[in]), %%xmm2\n\tmovsd 24(%[in]), %%xmm3\n\t"
                     "movsd 32(%[in]), %%xmm4\n\tmovsd 40(%[in]), %%xmm5\n\t"
                     "movsd 48(%[in]), %%xmm6\n\tmovsd 56(%[in]), %%xmm7\n\t"
                     "movsd 64(%[in]), %%xmm8\n\tmovsd 72(%[in]), %%xmm9\n\t"
                     "movsd 80(%[in]), %%xmm10\n\tmovsd 88(%[in]), %%xmm11\n\t"
                     "movsd 96(%[in]), %%xmm12\n\tmovsd 104(%[in]), %%xmm13\n\t"
                     "movsd 112(%[in]), %%xmm14\n\tmovsd 120(%[in]), %%xmm15\n\t"
                     "syscall\n\t"
                     "movsd %%xmm0, 0(%[out])\n\tmovsd %%xmm1, 8(%[out])\n\t"
                     "movsd %%xmm2, 16(%[out])\n\tmovsd %%xmm3, 24(%[out])\n\t"
                     "movsd %%xmm4, 32(%[out])\n\tmovsd %%xmm5, 40(%[out])\n\t"
                     "movsd %%xmm6, 48(%[out])\n\tmovsd %%xmm7, 56(%[out])\n\t"
                     "movsd %%xmm8, 64(%[out])\n\tmovsd %%xmm9, 72(%[out])\n\t"
                     "movsd %%xmm10, 80(%[out])\n\tmovsd %%xmm11, 88(%[out])\n\t"
                     "movsd %%xmm12, 96(%[out])\n\tmovsd %%xmm13, 104(%[out])\n\t"
                     "movsd %%xmm14, 112(%[out])\n\tmovsd %%xmm15, 120(%[out])\n\t"
                     : "+a"(rax)
                     : [in] "r"(in), [out] "r"(out), "r"(pid), "r"(tid), "r"(sig)
                     : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                       "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
                       "xmm14", "xmm15");
    unsigned after_mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(after_mxcsr));
    unsigned default_mxcsr = 0x1f80;
    __asm__ volatile("ldmxcsr %0" : : "m"(default_mxcsr));
    check("tgkill inside the asm block succeeded", rax == 0);
    int intact = 1;
    for (int i = 0; i < 16; i++)
        if (out[i] != in[i])
            intact = 0;
    check("xmm0-15 intact across a handler that clobbers them", intact);
    check("MXCSR restored after the handler", after_mxcsr == main_mxcsr);
    check("handler started with the default MXCSR", handler_mxcsr == default_mxcsr);

    /* Asynchronous: a periodic timer interrupts floating-point loops at random points;
     * each block's result must still be bit-identical. */
    phase("FPU state under a periodic timer");
    double expected = fp_block(1.7);
    install_plain(SIGALRM, fp_tick_handler, SA_RESTART);
    unblock(SIGALRM);
    fp_ticks = 0;
    set_itimer_ms(1, 1);
    long blocks = 0, wrong = 0;
    int64_t give_up = now_ns() + 10LL * 1000000000;
    while (fp_ticks < 20 && now_ns() < give_up) {
        if (fp_block(1.7) != expected)
            wrong++;
        blocks++;
    }
    cancel_itimer();
    block(SIGALRM);
    check("periodic timer interrupted the loop at least 20 times", fp_ticks >= 20);
    check("every floating-point block bit-identical", wrong == 0 && blocks > 0);
    set_default(SIGALRM);
    block(SIGUSR1);
}

/* ---- blocking calls interrupted by timers ------------------------------------------ */

static int pipe_fds[2];
static volatile sig_atomic_t alarm_count;

static void alarm_handler(int sig)
{
    (void)sig;
    alarm_count++;
}

static void alarm_writes_pipe(int sig)
{
    (void)sig;
    alarm_count++;
    char byte = 'R';
    (void)!write(pipe_fds[1], &byte, 1);
}

static void test_interrupted_calls(void)
{
    phase("blocking calls interrupted by timers");
    must("pipe", pipe(pipe_fds));
    unblock(SIGALRM);

    unsigned left = alarm(5);
    check("alarm with none pending returns 0", left == 0);
    left = alarm(0);
    check("alarm(0) returns the seconds left (4 or 5)", left == 4 || left == 5);

    install_plain(SIGALRM, alarm_handler, 0);
    alarm_count = 0;
    alarm(1);
    char byte = 0;
    ssize_t n = read(pipe_fds[0], &byte, 1);
    expect_errno("read interrupted by alarm(1)", n, EINTR);
    check("alarm handler ran once", alarm_count == 1);

    alarm_count = 0;
    set_itimer_ms(50, 0);
    n = read(pipe_fds[0], &byte, 1);
    expect_errno("read interrupted by setitimer 50ms", n, EINTR);
    check("itimer handler ran once", alarm_count == 1);
    struct itimerval it;
    getitimer(ITIMER_REAL, &it);
    check("one-shot itimer disarmed after firing", it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0);

    install_plain(SIGALRM, alarm_writes_pipe, SA_RESTART);
    alarm_count = 0;
    set_itimer_ms(50, 0);
    byte = 0;
    n = read(pipe_fds[0], &byte, 1);
    check("SA_RESTART read restarted and got the handler's byte", n == 1 && byte == 'R');
    check("SA_RESTART handler ran once", alarm_count == 1);

    /* nanosleep is never restarted: EINTR with the time left written back. */
    install_plain(SIGALRM, alarm_handler, SA_RESTART);
    alarm_count = 0;
    set_itimer_ms(50, 0);
    struct timespec request = {2, 0}, remaining = {0, 0};
    expect_errno("nanosleep 2s interrupted", nanosleep(&request, &remaining), EINTR);
    int64_t rem_ns = (int64_t)remaining.tv_sec * 1000000000 + remaining.tv_nsec;
    check("nanosleep remaining between 1s and 2s", rem_ns > 1000000000LL && rem_ns < 2000000000LL);

    alarm_count = 0;
    set_itimer_ms(50, 0);
    remaining.tv_sec = remaining.tv_nsec = 0;
    int rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &request, &remaining);
    expect_error("clock_nanosleep 2s interrupted", rc, EINTR);
    rem_ns = (int64_t)remaining.tv_sec * 1000000000 + remaining.tv_nsec;
    check("clock_nanosleep remaining between 1s and 2s", rem_ns > 1000000000LL && rem_ns < 2000000000LL);

    /* getitimer of a periodic timer keeps its interval. */
    set_itimer_ms(500, 250);
    getitimer(ITIMER_REAL, &it);
    check("getitimer keeps the interval", it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == 250000);
    check("getitimer value within the first period",
          it.it_value.tv_sec == 0 && it.it_value.tv_usec > 0 && it.it_value.tv_usec <= 500000);
    cancel_itimer();

    block(SIGALRM);
    set_default(SIGALRM);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* ---- sigsuspend and sigtimedwait ---------------------------------------------------- */

static void test_waiting(void)
{
    phase("sigsuspend");
    install_plain(SIGALRM, alarm_handler, 0);
    block(SIGALRM);
    alarm_count = 0;
    set_itimer_ms(30, 0);
    sigset_t wait_mask;
    pthread_sigmask(SIG_BLOCK, NULL, &wait_mask);
    sigdelset(&wait_mask, SIGALRM);
    expect_errno("sigsuspend", sigsuspend(&wait_mask), EINTR);
    check("sigsuspend woke for the timer's signal", alarm_count == 1);
    check("sigsuspend restored the mask", is_blocked(SIGALRM));
    set_default(SIGALRM);

    phase("sigtimedwait");
    install(SIGUSR1, recording_handler, 0);
    block(SIGUSR1);
    reset_records();
    /* kill, not raise: glibc's sigtimedwait reports SI_TKILL as SI_USER, musl's does not. */
    kill(getpid(), SIGUSR1);
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGUSR1);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    struct timespec one_second = {1, 0};
    int got = sigtimedwait(&wanted, &info, &one_second);
    check("sigtimedwait took the pending SIGUSR1", got == SIGUSR1);
    printf("sigtimedwait si_code: %s\n", code_name(info.si_code));
    check("and the handler did not run", atomic_load(&record_count) == 0);
    check("nothing pending afterwards", !is_pending(SIGUSR1));

    struct timespec fifty_ms = {0, 50 * 1000 * 1000};
    int64_t start = now_ns();
    expect_errno("sigtimedwait 50ms with nothing pending", sigtimedwait(&wanted, &info, &fifty_ms), EAGAIN);
    check("sigtimedwait waited at least 50ms", now_ns() - start >= 50000000);
    struct timespec zero = {0, 0};
    expect_errno("sigtimedwait zero timeout", sigtimedwait(&wanted, &info, &zero), EAGAIN);
    set_default(SIGUSR1);
}

/* ---- POSIX timers ------------------------------------------------------------------ */

#define TIMER_COOKIE 0x5eed

static void test_posix_timer(void)
{
    phase("timer_create SIGEV_SIGNAL");
    int sig = SIGRTMIN + 3;
    install(sig, recording_handler, 0);
    unblock(sig);
    reset_records();
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = sig;
    sev.sigev_value.sival_int = TIMER_COOKIE;
    timer_t timer;
    expect_errno("timer_create CLOCK_MONOTONIC SIGEV_SIGNAL", timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
    struct itimerspec spec = {{0, 20 * 1000 * 1000}, {0, 20 * 1000 * 1000}};
    expect_errno("timer_settime periodic 20ms", timer_settime(timer, 0, &spec, NULL), 0);
    struct itimerspec now;
    timer_gettime(timer, &now);
    check("timer_gettime keeps the interval", now.it_interval.tv_sec == 0 && now.it_interval.tv_nsec == 20000000);
    check("timer_gettime value within one period",
          now.it_value.tv_sec == 0 && now.it_value.tv_nsec > 0 && now.it_value.tv_nsec <= 20000000);
    for (int i = 0; i < 500 && atomic_load(&record_count) < 3; i++)
        sleep_ms(10);
    int ticks = atomic_load(&record_count);
    check("periodic timer ticked at least 3 times", ticks >= 3);
    check("timer overrun count is not negative", timer_getoverrun(timer) >= 0);
    expect_errno("timer_delete", timer_delete(timer), 0);
    int all_ok = ticks >= 1;
    for (int i = 0; i < ticks && i < MAX_RECORDS; i++)
        if (records[i].code != SI_TIMER || records[i].value != TIMER_COOKIE || records[i].signo != sig)
            all_ok = 0;
    printf("timer si_code: %s\n", code_name(records[0].code));
    check("every tick carried SI_TIMER and the sigev_value", all_ok);
    int after_delete = atomic_load(&record_count);
    sleep_ms(60);
    check("no ticks after timer_delete", atomic_load(&record_count) == after_delete);
    block(sig);
    set_default(sig);

    /* One-shot, absolute, on CLOCK_REALTIME, with SIGEV_NONE: just runs out. */
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_NONE;
    expect_errno("timer_create CLOCK_REALTIME SIGEV_NONE", timer_create(CLOCK_REALTIME, &sev, &timer), 0);
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    real.tv_nsec += 30 * 1000 * 1000;
    if (real.tv_nsec >= 1000000000) {
        real.tv_sec++;
        real.tv_nsec -= 1000000000;
    }
    struct itimerspec abs_spec = {{0, 0}, real};
    expect_errno("timer_settime absolute", timer_settime(timer, TIMER_ABSTIME, &abs_spec, NULL), 0);
    timer_gettime(timer, &now);
    check("absolute timer armed", now.it_value.tv_sec != 0 || now.it_value.tv_nsec != 0);
    sleep_ms(60);
    timer_gettime(timer, &now);
    check("absolute timer ran out", now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0);
    expect_errno("timer_delete SIGEV_NONE timer", timer_delete(timer), 0);
}

static atomic_int thread_timer_ready;
static atomic_int thread_timer_tid;

static void *thread_timer_target(void *arg)
{
    int sig = (int)(intptr_t)arg;
    atomic_store(&thread_timer_tid, current_tid());
    atomic_store(&thread_timer_ready, 1);
    sigset_t wait_mask;
    sigfillset(&wait_mask);
    sigdelset(&wait_mask, sig);
    while (atomic_load(&record_count) < 3)
        sigsuspend(&wait_mask);
    return NULL;
}

static void test_thread_timer(void)
{
    phase("timer_create SIGEV_THREAD_ID");
    int sig = SIGRTMIN + 4;
    install(sig, recording_handler, 0);
    block(sig);
    reset_records();
    atomic_store(&thread_timer_ready, 0);
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_timer_target, (void *)(intptr_t)sig) != 0) {
        printf("FATAL pthread_create for the timer target\n");
        exit(99);
    }
    while (!atomic_load(&thread_timer_ready))
        sched_yield();
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = sig;
    sev.sigev_value.sival_int = TIMER_COOKIE;
#ifdef sigev_notify_thread_id
    sev.sigev_notify_thread_id = atomic_load(&thread_timer_tid); /* musl */
#else
    sev._sigev_un._tid = atomic_load(&thread_timer_tid); /* glibc */
#endif
    timer_t timer;
    int rc = timer_create(CLOCK_MONOTONIC, &sev, &timer);
    expect_errno("timer_create SIGEV_THREAD_ID", rc, 0);
    if (rc != 0) {
        /* Release the target thread so that it can be joined. */
        pthread_kill(thread, sig);
        pthread_kill(thread, sig);
        pthread_kill(thread, sig);
    } else {
        struct itimerspec spec = {{0, 20 * 1000 * 1000}, {0, 20 * 1000 * 1000}};
        timer_settime(timer, 0, &spec, NULL);
    }
    pthread_join(thread, NULL);
    if (rc == 0)
        timer_delete(timer);
    int ticks = atomic_load(&record_count);
    int on_target = ticks >= 3;
    for (int i = 0; i < ticks && i < MAX_RECORDS; i++)
        if (records[i].tid != atomic_load(&thread_timer_tid) || records[i].code != SI_TIMER)
            on_target = 0;
    check("thread-directed timer ticked 3 times, always on the target thread", on_target);
    check("timer signal never pending for the main thread", !is_pending(sig));
    set_default(sig);
}

int main(void)
{
    /* Block everything before any thread exists: threads inherit it, and each test
     * unblocks exactly what it expects to receive on the main thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    atomic_store(&phase_deadline_ns, 0);
    pthread_t watchdog;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int watchdog_ok = pthread_create(&watchdog, &attr, watchdog_thread, NULL) == 0;
    pthread_attr_destroy(&attr);
    if (watchdog_ok)
        pthread_detach(watchdog);

    test_basics();
    test_self_sent();
    test_other_thread();
    test_ucontext();
    test_pending();
    test_flags();
    test_faults();
    test_altstack();
    test_fpu();
    test_interrupted_calls();
    test_waiting();
    test_posix_timer();
    test_thread_timer();
    atomic_store(&phase_deadline_ns, 0);
    if (checks_failed)
        printf("signals: %d failed checks\n", checks_failed);
    else
        printf("signals: done\n");
    return checks_failed ? 1 : 0;
}
