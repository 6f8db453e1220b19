/*
 * futex_stress: the futex system call under contention and at its edges.
 *
 *  1. 64 threads each take a hand-written futex mutex (raw FUTEX_WAIT_PRIVATE /
 *     FUTEX_WAKE_PRIVATE, Drepper's three-state lock) 2000 times: exact total.
 *  2. pthread mutex + condition variable ping-pong between two threads, and a broadcast
 *     that must release every waiter.
 *  3. Edge cases: value mismatch (EAGAIN), relative timeout (ETIMEDOUT), absolute
 *     FUTEX_WAIT_BITSET timeouts on CLOCK_MONOTONIC and CLOCK_REALTIME (ETIMEDOUT),
 *     invalid arguments, bitset-selective wakes.
 *  4. FUTEX_WAKE with a count, FUTEX_CMP_REQUEUE (waiters moved to a second futex and
 *     woken there, all accounted for) and FUTEX_WAKE_OP.
 *
 * Sized by iteration counts, not time, so that it is a real contention test natively
 * (well under a second) yet finishes within a minute on one emulated CPU under TCG.
 * Whether a waiter is really asleep in the kernel is established by the kernel itself:
 * count_waiters() requeues a futex's waiters to a scratch futex and back, and
 * FUTEX_CMP_REQUEUE returns how many it moved. Every wait runs under the alarm()
 * watchdog from common.h. The output is fixed: counts that do not depend on timing.
 */
#define _GNU_SOURCE
#include "common.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Defined here: musl's headers do not include <linux/futex.h>. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#define FUTEX_OP_SET 0
#define FUTEX_OP_ADD 1
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP_CMP_GT 4
#define FUTEX_OP(op, oparg, cmp, cmparg) \
    ((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))

#define PRIV(op) ((op) | FUTEX_PRIVATE_FLAG)
#define WATCHDOG_SECS 30

static long futex(atomic_int *uaddr, int op, int val, const struct timespec *timeout,
                  atomic_int *uaddr2, unsigned val3)
{
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

/* For the ops whose fourth argument is a count (val2), not a timeout. */
static long futex_val2(atomic_int *uaddr, int op, int val, long val2, atomic_int *uaddr2,
                       unsigned val3)
{
    return syscall(SYS_futex, uaddr, op, val, (void *)val2, uaddr2, val3);
}

static long futex_wait(atomic_int *uaddr, int expected)
{
    return futex(uaddr, PRIV(FUTEX_WAIT), expected, NULL, NULL, 0);
}

static long futex_wake(atomic_int *uaddr, int count)
{
    return futex(uaddr, PRIV(FUTEX_WAKE), count, NULL, NULL, 0);
}

static int64_t ns_of(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ns_of(ts);
}

static struct timespec ts_of(int64_t ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    return ts;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        printf("FATAL pthread_create: %s\n", errno_name(rc));
        fflush(stdout);
        exit(99);
    }
    return thread;
}

/*
 * How many threads are asleep on `f` right now, according to the kernel: requeue them
 * all to a scratch futex (CMP_REQUEUE returns how many it moved), then back. Nothing
 * wakes them, so the caller's waiters stay asleep.
 */
static long count_waiters(atomic_int *f)
{
    static atomic_int scratch;
    long moved;
    do
        moved = futex_val2(f, PRIV(FUTEX_CMP_REQUEUE), 0, INT_MAX, &scratch, atomic_load(f));
    while (moved < 0 && errno == EAGAIN); /* *f changed under us: retry */
    if (moved < 0)
        return -1;
    long back = futex_val2(&scratch, PRIV(FUTEX_CMP_REQUEUE), 0, INT_MAX, f, atomic_load(&scratch));
    return back == moved ? moved : -1;
}

/* Waits (up to the watchdog) until exactly `n` threads sleep on `f`. */
static int await_waiters(atomic_int *f, long n)
{
    for (int i = 0; i < 20000; i++) {
        long now = count_waiters(f);
        if (now == n)
            return 1;
        if (now < 0 || now > n)
            return 0;
        sleep_ms(1);
    }
    return 0;
}

/* ---- 1. a futex mutex under 64-way contention ------------------------------------- */

#define THREADS 64
#define ITERS 2000

struct futex_mutex {
    atomic_int state; /* 0 free, 1 locked, 2 locked with (possible) waiters */
};

static void fm_lock(struct futex_mutex *m)
{
    int c = 0;
    if (atomic_compare_exchange_strong(&m->state, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(&m->state, 2);
    while (c != 0) {
        futex_wait(&m->state, 2); /* EAGAIN if it changed meanwhile: just retry */
        c = atomic_exchange(&m->state, 2);
    }
}

static void fm_unlock(struct futex_mutex *m)
{
    if (atomic_fetch_sub(&m->state, 1) != 1) {
        atomic_store(&m->state, 0);
        futex_wake(&m->state, 1);
    }
}

static struct futex_mutex stress_lock;
static long stress_counter;     /* protected by stress_lock, deliberately not atomic */
static int stress_inside;       /* threads inside the critical section */
static atomic_int stress_overlap; /* set if two threads were ever inside at once */
static atomic_int start_gate;

static void *stress_worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    while (atomic_load(&start_gate) == 0)
        futex_wait(&start_gate, 0);
    long mine = 0;
    for (int i = 0; i < ITERS; i++) {
        fm_lock(&stress_lock);
        if (++stress_inside != 1)
            atomic_store(&stress_overlap, 1);
        long v = stress_counter;
        /* A little work inside the lock makes preemption while holding it likely. */
        volatile long spin = 0;
        for (int k = 0; k < 20; k++)
            spin += k * id;
        stress_counter = v + 1;
        stress_inside--;
        fm_unlock(&stress_lock);
        mine++;
        if ((i & 127) == (id & 127))
            sched_yield();
    }
    return (void *)(intptr_t)mine;
}

static void test_futex_mutex(void)
{
    watchdog(WATCHDOG_SECS, "futex mutex stress");
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++)
        threads[i] = spawn(stress_worker, (void *)(intptr_t)i);
    atomic_store(&start_gate, 1);
    futex_wake(&start_gate, INT_MAX);
    long joined = 0;
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(threads[i], &ret);
        joined += (long)(intptr_t)ret;
    }
    printf("futex mutex: %d threads x %d = %ld (expected %d)\n", THREADS, ITERS, stress_counter,
           THREADS * ITERS);
    check("futex mutex counter exact", stress_counter == THREADS * ITERS && joined == THREADS * ITERS);
    check("futex mutex never held twice", atomic_load(&stress_overlap) == 0);
    check("futex mutex free at the end", atomic_load(&stress_lock.state) == 0);
}

/* ---- 2. pthread mutex + condvar ------------------------------------------------------ */

#define PING_ROUNDS 2000
#define BROADCAST_WAITERS 32

static pthread_mutex_t pp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cond = PTHREAD_COND_INITIALIZER;
static int pp_turn; /* 0: ping's turn, 1: pong's turn */
static long pp_moves[2];

static void *pp_player(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < PING_ROUNDS; i++) {
        pthread_mutex_lock(&pp_lock);
        while (pp_turn != me)
            pthread_cond_wait(&pp_cond, &pp_lock);
        pp_moves[me]++;
        pp_turn = !me;
        pthread_cond_signal(&pp_cond);
        pthread_mutex_unlock(&pp_lock);
    }
    return NULL;
}

static int bc_go;
static int bc_released;

static void *bc_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pp_lock);
    while (!bc_go)
        pthread_cond_wait(&pp_cond, &pp_lock);
    bc_released++;
    pthread_mutex_unlock(&pp_lock);
    return NULL;
}

static void test_condvar(void)
{
    watchdog(WATCHDOG_SECS, "mutex/condvar ping-pong");
    pthread_t ping = spawn(pp_player, (void *)0), pong = spawn(pp_player, (void *)1);
    pthread_join(ping, NULL);
    pthread_join(pong, NULL);
    printf("ping-pong moves: %ld + %ld (expected %d each)\n", pp_moves[0], pp_moves[1], PING_ROUNDS);
    check("ping-pong strictly alternated", pp_moves[0] == PING_ROUNDS && pp_moves[1] == PING_ROUNDS &&
                                               pp_turn == 0);

    watchdog(WATCHDOG_SECS, "condvar broadcast");
    pthread_t waiters[BROADCAST_WAITERS];
    for (int i = 0; i < BROADCAST_WAITERS; i++)
        waiters[i] = spawn(bc_waiter, NULL);
    sleep_ms(20); /* not needed for correctness: the flag decides; just lets most wait */
    pthread_mutex_lock(&pp_lock);
    bc_go = 1;
    pthread_cond_broadcast(&pp_cond);
    pthread_mutex_unlock(&pp_lock);
    for (int i = 0; i < BROADCAST_WAITERS; i++)
        pthread_join(waiters[i], NULL);
    printf("broadcast released: %d (expected %d)\n", bc_released, BROADCAST_WAITERS);
    check("broadcast released every waiter", bc_released == BROADCAST_WAITERS);
}

/* ---- 3. edge cases --------------------------------------------------------------- */

static atomic_int bitset_word;
static atomic_int bitset_woken;

static void *bitset_waiter(void *arg)
{
    (void)arg;
    while (atomic_load(&bitset_woken) == 0) {
        long rc = futex(&bitset_word, PRIV(FUTEX_WAIT_BITSET), 0, NULL, NULL, 0x1);
        if (rc == 0)
            atomic_store(&bitset_woken, 1);
    }
    return NULL;
}

static void test_edges(void)
{
    watchdog(WATCHDOG_SECS, "futex edge cases");
    atomic_int word = 5;

    expect_errno("FUTEX_WAIT value mismatch", futex_wait(&word, 6), EAGAIN);
    expect_errno("FUTEX_WAIT (shared) value mismatch", futex(&word, FUTEX_WAIT, 6, NULL, NULL, 0), EAGAIN);
    expect_errno("FUTEX_WAKE nobody waiting", futex_wake(&word, 1), 0);
    printf("FUTEX_WAKE nobody waiting returns: %ld\n", futex_wake(&word, INT_MAX));

    struct timespec rel = {0, 30 * 1000 * 1000};
    int64_t start = now_ns(CLOCK_MONOTONIC);
    expect_errno("FUTEX_WAIT relative 30ms", futex(&word, PRIV(FUTEX_WAIT), 5, &rel, NULL, 0), ETIMEDOUT);
    check("FUTEX_WAIT waited at least 30ms", now_ns(CLOCK_MONOTONIC) - start >= 30000000);

    start = now_ns(CLOCK_MONOTONIC);
    expect_errno("FUTEX_WAIT (shared) relative 10ms", futex(&word, FUTEX_WAIT, 5, &(struct timespec){0, 10000000}, NULL, 0),
                 ETIMEDOUT);
    check("FUTEX_WAIT (shared) waited at least 10ms", now_ns(CLOCK_MONOTONIC) - start >= 10000000);

    int64_t deadline = now_ns(CLOCK_MONOTONIC) + 30000000;
    struct timespec abs_mono = ts_of(deadline);
    expect_errno("FUTEX_WAIT_BITSET absolute CLOCK_MONOTONIC",
                 futex(&word, PRIV(FUTEX_WAIT_BITSET), 5, &abs_mono, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);
    check("FUTEX_WAIT_BITSET returned after its monotonic deadline", now_ns(CLOCK_MONOTONIC) >= deadline);

    deadline = now_ns(CLOCK_REALTIME) + 30000000;
    struct timespec abs_real = ts_of(deadline);
    expect_errno("FUTEX_WAIT_BITSET absolute CLOCK_REALTIME",
                 futex(&word, PRIV(FUTEX_WAIT_BITSET) | FUTEX_CLOCK_REALTIME, 5, &abs_real, NULL,
                       FUTEX_BITSET_MATCH_ANY),
                 ETIMEDOUT);
    check("FUTEX_WAIT_BITSET returned after its realtime deadline", now_ns(CLOCK_REALTIME) >= deadline);

    /* 1 us after boot: in the past, and valid even where the clock started recently. */
    struct timespec past = {0, 1000};
    expect_errno("FUTEX_WAIT_BITSET deadline in the past",
                 futex(&word, PRIV(FUTEX_WAIT_BITSET), 5, &past, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);

    struct timespec bad = {0, 1000000000};
    expect_errno("FUTEX_WAIT tv_nsec 1e9", futex(&word, PRIV(FUTEX_WAIT), 5, &bad, NULL, 0), EINVAL);
    expect_errno("FUTEX_WAIT_BITSET bitset 0", futex(&word, PRIV(FUTEX_WAIT_BITSET), 5, &rel, NULL, 0), EINVAL);
    expect_errno("FUTEX_WAIT misaligned", futex((atomic_int *)((char *)&word + 1), PRIV(FUTEX_WAIT), 5, &rel, NULL, 0),
                 EINVAL);
    expect_errno("FUTEX_WAIT NULL", futex(NULL, PRIV(FUTEX_WAIT), 5, &rel, NULL, 0), EFAULT);
    expect_errno("unknown futex op", futex(&word, PRIV(99), 0, NULL, NULL, 0), ENOSYS);

    /* A waiter with bitset 0x1 ignores a wake for 0x2, then takes one for 0x1. */
    watchdog(WATCHDOG_SECS, "futex bitset wake");
    pthread_t waiter = spawn(bitset_waiter, NULL);
    check("bitset waiter asleep", await_waiters(&bitset_word, 1));
    long woken_other = futex(&bitset_word, PRIV(FUTEX_WAKE_BITSET), INT_MAX, NULL, NULL, 0x2);
    printf("FUTEX_WAKE_BITSET 0x2 woke: %ld\n", woken_other);
    check("non-matching bitset woke nobody", woken_other == 0 && count_waiters(&bitset_word) == 1);
    long woken_match = futex(&bitset_word, PRIV(FUTEX_WAKE_BITSET), INT_MAX, NULL, NULL, 0x3);
    printf("FUTEX_WAKE_BITSET 0x3 woke: %ld\n", woken_match);
    pthread_join(waiter, NULL);
    check("matching bitset woke the waiter", woken_match == 1 && atomic_load(&bitset_woken) == 1);
}

/* ---- 4. counted wakes, requeue, wake-op ------------------------------------------- */

#define REQUEUE_WAITERS 8

static atomic_int fa, fb; /* waiters sleep on fa while go == 0 */
static atomic_int go;
static atomic_int wake_returns; /* how many FUTEX_WAITs returned 0 (woken) */

static void *requeue_waiter(void *arg)
{
    (void)arg;
    while (atomic_load(&go) == 0)
        if (futex_wait(&fa, 0) == 0)
            atomic_fetch_add(&wake_returns, 1);
    return NULL;
}

static atomic_int op_f1, op_f2, op_go1;

static void *op_waiter1(void *arg)
{
    (void)arg;
    while (atomic_load(&op_go1) == 0)
        futex_wait(&op_f1, 0);
    return NULL;
}

static void *op_waiter2(void *arg)
{
    (void)arg;
    while (atomic_load(&op_f2) == 0)
        futex_wait(&op_f2, 0);
    return NULL;
}

static void test_requeue_and_wake_op(void)
{
    watchdog(WATCHDOG_SECS, "counted FUTEX_WAKE");
    pthread_t threads[REQUEUE_WAITERS];
    atomic_store(&go, 0);
    for (int i = 0; i < REQUEUE_WAITERS; i++)
        threads[i] = spawn(requeue_waiter, NULL);
    check("8 waiters asleep on futex A", await_waiters(&fa, REQUEUE_WAITERS));
    /* Wake 3 while go == 0: they go straight back to sleep on A. */
    long woke = futex_wake(&fa, 3);
    printf("FUTEX_WAKE 3 of 8 woke: %ld\n", woke);
    check("8 waiters asleep on futex A again", await_waiters(&fa, REQUEUE_WAITERS));

    watchdog(WATCHDOG_SECS, "FUTEX_CMP_REQUEUE");
    long mismatch = futex_val2(&fa, PRIV(FUTEX_CMP_REQUEUE), 1, INT_MAX, &fb, 1234);
    expect_errno("FUTEX_CMP_REQUEUE value mismatch", mismatch, EAGAIN);
    atomic_store(&go, 1); /* whoever is woken from now on leaves */
    long moved = futex_val2(&fa, PRIV(FUTEX_CMP_REQUEUE), 1, INT_MAX, &fb, 0);
    printf("FUTEX_CMP_REQUEUE woke 1, moved the rest: returned %ld\n", moved);
    printf("waiters left on A: %ld, now on B: %ld\n", count_waiters(&fa), count_waiters(&fb));
    long from_a = futex_wake(&fa, INT_MAX);
    long from_b = futex_wake(&fb, INT_MAX);
    printf("FUTEX_WAKE A woke: %ld, B woke: %ld\n", from_a, from_b);
    for (int i = 0; i < REQUEUE_WAITERS; i++)
        pthread_join(threads[i], NULL);
    printf("waits that returned woken: %d (expected %d)\n", atomic_load(&wake_returns),
           3 + REQUEUE_WAITERS);
    check("every requeued waiter accounted for",
          woke == 3 && moved == REQUEUE_WAITERS && from_a == 0 && from_b == REQUEUE_WAITERS - 1 &&
              atomic_load(&wake_returns) == 3 + REQUEUE_WAITERS);

    watchdog(WATCHDOG_SECS, "FUTEX_WAKE_OP");
    pthread_t w1 = spawn(op_waiter1, NULL), w2 = spawn(op_waiter2, NULL);
    check("one waiter asleep on each futex", await_waiters(&op_f1, 1) && await_waiters(&op_f2, 1));
    atomic_store(&op_go1, 1);
    /* Wake 1 on f1; set f2 = 1 and, since its old value was 0, wake 1 on f2. */
    long both = futex_val2(&op_f1, PRIV(FUTEX_WAKE_OP), 1, 1, &op_f2,
                           FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0));
    printf("FUTEX_WAKE_OP woke: %ld (expected 2), f2 now %d\n", both, atomic_load(&op_f2));
    pthread_join(w1, NULL);
    pthread_join(w2, NULL);
    /* Old value 1 is not > 5: f2 becomes 8 but nobody on f2 is woken. */
    long none = futex_val2(&op_f1, PRIV(FUTEX_WAKE_OP), 1, 1, &op_f2,
                           FUTEX_OP(FUTEX_OP_ADD, 7, FUTEX_OP_CMP_GT, 5));
    printf("FUTEX_WAKE_OP with a false comparison woke: %ld, f2 now %d\n", none, atomic_load(&op_f2));
    check("FUTEX_WAKE_OP woke both and applied its operations",
          both == 2 && none == 0 && atomic_load(&op_f2) == 8);
}

int main(void)
{
    test_futex_mutex();
    test_condvar();
    test_edges();
    test_requeue_and_wake_op();
    watchdog(0, NULL);
    if (checks_failed)
        printf("futex_stress: %d failed checks\n", checks_failed);
    else
        printf("futex_stress: done\n");
    return checks_failed ? 1 : 0;
}
