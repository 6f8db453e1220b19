/*
 * threads: POSIX threads as real programs use them. Every check prints a fixed line
 * from the main thread after the workers have been joined, so the output does not
 * depend on scheduling: mutexes (exact counter total, error-checking and recursive
 * kinds), condition variables (bounded producer/consumer queue, exact checksum),
 * rwlocks, barriers, thread-local storage, join return values, detached threads,
 * stopping a worker through a flag, pthread_once, custom stack sizes, gettid/getpid,
 * sched_yield and CPU affinity. Each phase that could block forever on a broken kernel
 * runs under the alarm() watchdog from common.h.
 */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WATCHDOG_SECS 20

static pid_t current_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Creates a thread with a 256 KiB stack (the same on musl and glibc, and small enough
 * that many threads fit in a small guest). */
static int spawn(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

static void must_spawn(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    int rc = spawn(thread, fn, arg);
    if (rc != 0) {
        printf("FATAL pthread_create: %s\n", errno_name(rc));
        fflush(stdout);
        exit(99);
    }
}

static void must_join(pthread_t thread, void **result)
{
    int rc = pthread_join(thread, result);
    if (rc != 0) {
        printf("FATAL pthread_join: %s\n", errno_name(rc));
        fflush(stdout);
        exit(99);
    }
}

/* ---- mutex: N threads incrementing one counter ------------------------------------ */

#define MUTEX_THREADS 8
#define MUTEX_ITERS 20000

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static int inside; /* threads inside the critical section; must never exceed 1 */
static int overlap_seen;

static void *mutex_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < MUTEX_ITERS; i++) {
        pthread_mutex_lock(&counter_lock);
        if (++inside != 1)
            overlap_seen = 1;
        long v = counter;
        if ((i & 1023) == 0)
            sched_yield(); /* give others a chance to find the lock held */
        counter = v + 1;
        inside--;
        pthread_mutex_unlock(&counter_lock);
    }
    return NULL;
}

static void test_mutex(void)
{
    watchdog(WATCHDOG_SECS, "mutex counter");
    pthread_t threads[MUTEX_THREADS];
    for (int i = 0; i < MUTEX_THREADS; i++)
        must_spawn(&threads[i], mutex_worker, NULL);
    for (int i = 0; i < MUTEX_THREADS; i++)
        must_join(threads[i], NULL);
    printf("mutex counter: %ld (expected %d)\n", counter, MUTEX_THREADS * MUTEX_ITERS);
    check("mutex counter exact", counter == (long)MUTEX_THREADS * MUTEX_ITERS);
    check("mutex never held twice", !overlap_seen);

    pthread_mutexattr_t attr;
    pthread_mutex_t m;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&m, &attr);
    pthread_mutex_lock(&m);
    expect_error("errorcheck relock", pthread_mutex_lock(&m), EDEADLK);
    expect_error("errorcheck trylock held", pthread_mutex_trylock(&m), EBUSY);
    pthread_mutex_unlock(&m);
    expect_error("errorcheck unlock unlocked", pthread_mutex_unlock(&m), EPERM);
    pthread_mutex_destroy(&m);

    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&m, &attr);
    int rc = pthread_mutex_lock(&m) | pthread_mutex_lock(&m) | pthread_mutex_trylock(&m);
    rc |= pthread_mutex_unlock(&m) | pthread_mutex_unlock(&m) | pthread_mutex_unlock(&m);
    check("recursive mutex locks three times", rc == 0);
    expect_error("recursive unlock once too often", pthread_mutex_unlock(&m), EPERM);
    pthread_mutex_destroy(&m);
    pthread_mutexattr_destroy(&attr);
}

/* ---- condition variables: bounded producer/consumer queue ------------------------- */

#define QUEUE_CAP 8
#define PRODUCERS 3
#define CONSUMERS 3
#define ITEMS_PER_PRODUCER 5000

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t queue_not_full = PTHREAD_COND_INITIALIZER;
static long queue[QUEUE_CAP];
static int queue_head, queue_len;
static int queue_overflow;

static void queue_put(long item)
{
    pthread_mutex_lock(&queue_lock);
    while (queue_len == QUEUE_CAP)
        pthread_cond_wait(&queue_not_full, &queue_lock);
    queue[(queue_head + queue_len) % QUEUE_CAP] = item;
    if (++queue_len > QUEUE_CAP)
        queue_overflow = 1;
    pthread_cond_signal(&queue_not_empty);
    pthread_mutex_unlock(&queue_lock);
}

static long queue_take(void)
{
    pthread_mutex_lock(&queue_lock);
    while (queue_len == 0)
        pthread_cond_wait(&queue_not_empty, &queue_lock);
    long item = queue[queue_head];
    queue_head = (queue_head + 1) % QUEUE_CAP;
    queue_len--;
    pthread_cond_signal(&queue_not_full);
    pthread_mutex_unlock(&queue_lock);
    return item;
}

struct consumer_result {
    long sum;
    long count;
};

static void *producer(void *arg)
{
    long base = (long)(intptr_t)arg * 1000000;
    for (long i = 1; i <= ITEMS_PER_PRODUCER; i++)
        queue_put(base + i);
    return NULL;
}

static void *consumer(void *arg)
{
    struct consumer_result *result = arg;
    for (;;) {
        long item = queue_take();
        if (item < 0) /* the stop sentinel */
            return NULL;
        result->sum += item;
        result->count++;
    }
}

static void test_condvar(void)
{
    watchdog(WATCHDOG_SECS, "condvar queue");
    pthread_t producers[PRODUCERS], consumers[CONSUMERS];
    struct consumer_result results[CONSUMERS] = {{0, 0}};
    for (int i = 0; i < CONSUMERS; i++)
        must_spawn(&consumers[i], consumer, &results[i]);
    for (int i = 0; i < PRODUCERS; i++)
        must_spawn(&producers[i], producer, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < PRODUCERS; i++)
        must_join(producers[i], NULL);
    for (int i = 0; i < CONSUMERS; i++)
        queue_put(-1);
    long sum = 0, count = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        must_join(consumers[i], NULL);
        sum += results[i].sum;
        count += results[i].count;
    }
    long expected = 0;
    for (long p = 1; p <= PRODUCERS; p++)
        expected += p * 1000000 * ITEMS_PER_PRODUCER +
                    (long)ITEMS_PER_PRODUCER * (ITEMS_PER_PRODUCER + 1) / 2;
    printf("condvar queue items: %ld, checksum %ld (expected %ld)\n", count, sum, expected);
    check("condvar queue checksum exact", sum == expected && count == PRODUCERS * ITEMS_PER_PRODUCER);
    check("condvar queue never overfilled", !queue_overflow);

    /* A timed wait that nobody signals must time out. */
    pthread_mutex_lock(&queue_lock);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 20 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    int rc = pthread_cond_timedwait(&queue_not_empty, &queue_lock, &deadline);
    pthread_mutex_unlock(&queue_lock);
    expect_error("cond_timedwait unsignalled", rc, ETIMEDOUT);
}

/* ---- rwlock ------------------------------------------------------------------------ */

#define RW_READERS 4
#define RW_WRITERS 2
#define RW_WRITES 2000
#define RW_READS 4000

static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static long rw_a, rw_b; /* writers keep rw_a == rw_b */
static atomic_int rw_torn;

static void *rw_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < RW_WRITES; i++) {
        pthread_rwlock_wrlock(&rwlock);
        rw_a++;
        if ((i & 255) == 0)
            sched_yield();
        rw_b++;
        pthread_rwlock_unlock(&rwlock);
    }
    return NULL;
}

static void *rw_reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < RW_READS; i++) {
        pthread_rwlock_rdlock(&rwlock);
        if (rw_a != rw_b)
            atomic_fetch_add(&rw_torn, 1);
        pthread_rwlock_unlock(&rwlock);
    }
    return NULL;
}

static void *rw_try_from_other_thread(void *arg)
{
    int *results = arg;
    results[0] = pthread_rwlock_tryrdlock(&rwlock);
    if (results[0] == 0)
        pthread_rwlock_unlock(&rwlock);
    results[1] = pthread_rwlock_trywrlock(&rwlock);
    if (results[1] == 0)
        pthread_rwlock_unlock(&rwlock);
    return NULL;
}

static void test_rwlock(void)
{
    watchdog(WATCHDOG_SECS, "rwlock");
    pthread_t threads[RW_READERS + RW_WRITERS];
    for (int i = 0; i < RW_WRITERS; i++)
        must_spawn(&threads[i], rw_writer, NULL);
    for (int i = 0; i < RW_READERS; i++)
        must_spawn(&threads[RW_WRITERS + i], rw_reader, NULL);
    for (int i = 0; i < RW_READERS + RW_WRITERS; i++)
        must_join(threads[i], NULL);
    printf("rwlock writes: %ld (expected %d)\n", rw_a, RW_WRITERS * RW_WRITES);
    check("rwlock writes exact", rw_a == RW_WRITERS * RW_WRITES);
    check("rwlock readers never saw a torn update", atomic_load(&rw_torn) == 0 && rw_a == rw_b);

    int results[2];
    pthread_t other;
    pthread_rwlock_rdlock(&rwlock);
    must_spawn(&other, rw_try_from_other_thread, results);
    must_join(other, NULL);
    pthread_rwlock_unlock(&rwlock);
    expect_error("rwlock tryrdlock while read-held", results[0], 0);
    expect_error("rwlock trywrlock while read-held", results[1], EBUSY);
    pthread_rwlock_wrlock(&rwlock);
    must_spawn(&other, rw_try_from_other_thread, results);
    must_join(other, NULL);
    pthread_rwlock_unlock(&rwlock);
    expect_error("rwlock tryrdlock while write-held", results[0], EBUSY);
    expect_error("rwlock trywrlock while write-held", results[1], EBUSY);
}

/* ---- barrier ----------------------------------------------------------------------- */

#define BARRIER_THREADS 6
#define BARRIER_ROUNDS 200

static pthread_barrier_t barrier;
static long barrier_slots[BARRIER_THREADS];
static atomic_int barrier_serials;
static atomic_int barrier_bad_sums;

static void *barrier_worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long round = 1; round <= BARRIER_ROUNDS; round++) {
        barrier_slots[id] = round * (id + 1);
        if (pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&barrier_serials, 1);
        long sum = 0;
        for (int i = 0; i < BARRIER_THREADS; i++)
            sum += barrier_slots[i];
        if (sum != round * BARRIER_THREADS * (BARRIER_THREADS + 1) / 2)
            atomic_fetch_add(&barrier_bad_sums, 1);
        /* Nobody may write the next round's slot before everyone has summed this one. */
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

static void test_barrier(void)
{
    watchdog(WATCHDOG_SECS, "barrier");
    pthread_barrier_init(&barrier, NULL, BARRIER_THREADS);
    pthread_t threads[BARRIER_THREADS];
    for (int i = 0; i < BARRIER_THREADS; i++)
        must_spawn(&threads[i], barrier_worker, (void *)(intptr_t)i);
    for (int i = 0; i < BARRIER_THREADS; i++)
        must_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
    printf("barrier serial threads: %d (expected %d)\n", atomic_load(&barrier_serials),
           BARRIER_ROUNDS);
    check("barrier one serial thread per round", atomic_load(&barrier_serials) == BARRIER_ROUNDS);
    check("barrier every thread saw every slot", atomic_load(&barrier_bad_sums) == 0);
}

/* ---- thread-local storage ---------------------------------------------------------- */

#define TLS_THREADS 8

static __thread long tls_value = 7;  /* .tdata: initialised image */
static __thread long tls_zeroed[64]; /* .tbss: must start zeroed in every thread */

struct tls_result {
    int started_with_image;
    long value;
};

static void *tls_worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    struct tls_result *result = malloc(sizeof *result);
    int zeroed = 1;
    for (int i = 0; i < 64; i++)
        if (tls_zeroed[i] != 0)
            zeroed = 0;
    result->started_with_image = tls_value == 7 && zeroed;
    tls_value = (id + 1) * 100;
    for (int i = 0; i < 64; i++)
        tls_zeroed[i] = id;
    for (int i = 0; i < 50; i++)
        sched_yield(); /* let the other threads write their copies meanwhile */
    long sum = 0;
    for (int i = 0; i < 64; i++)
        sum += tls_zeroed[i];
    result->value = sum == 64 * id ? tls_value : -1;
    return result;
}

static void test_tls(void)
{
    watchdog(WATCHDOG_SECS, "thread-local storage");
    tls_value = 12345;
    pthread_t threads[TLS_THREADS];
    for (int i = 0; i < TLS_THREADS; i++)
        must_spawn(&threads[i], tls_worker, (void *)(intptr_t)i);
    long sum = 0;
    int images = 0;
    for (int i = 0; i < TLS_THREADS; i++) {
        void *ret;
        must_join(threads[i], &ret);
        struct tls_result *result = ret;
        images += result->started_with_image;
        sum += result->value;
        free(result);
    }
    printf("tls sum of per-thread values: %ld (expected %d)\n", sum,
           100 * TLS_THREADS * (TLS_THREADS + 1) / 2);
    check("tls values distinct per thread", sum == 100 * TLS_THREADS * (TLS_THREADS + 1) / 2);
    check("tls every thread started from the initial image", images == TLS_THREADS);
    check("tls main thread's copy untouched", tls_value == 12345);
}

/* ---- joins with return values, default attributes ---------------------------------- */

static void *square(void *arg)
{
    intptr_t n = (intptr_t)arg;
    return (void *)(n * n);
}

static void test_join_values(void)
{
    watchdog(WATCHDOG_SECS, "join return values");
    pthread_t threads[10];
    for (intptr_t i = 0; i < 10; i++) {
        int rc = pthread_create(&threads[i], NULL, square, (void *)i); /* default attr */
        if (rc != 0) {
            printf("FATAL pthread_create default attr: %s\n", errno_name(rc));
            exit(99);
        }
    }
    intptr_t sum = 0;
    for (int i = 0; i < 10; i++) {
        void *ret;
        must_join(threads[i], &ret);
        sum += (intptr_t)ret;
    }
    printf("join sum of squares 0..9: %ld\n", (long)sum);
    check("join return values exact", sum == 285);
}

/* ---- detached threads -------------------------------------------------------------- */

#define DETACHED 8

static sem_t detached_done;
static atomic_long detached_sum;

static void *detached_worker(void *arg)
{
    atomic_fetch_add(&detached_sum, (long)(intptr_t)arg);
    sem_post(&detached_done);
    return NULL;
}

static void test_detached(void)
{
    watchdog(WATCHDOG_SECS, "detached threads");
    sem_init(&detached_done, 0, 0);
    int created = 0;
    for (intptr_t i = 1; i <= DETACHED; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        if (pthread_create(&thread, &attr, detached_worker, (void *)i) == 0)
            created++;
        pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < created; i++)
        while (sem_wait(&detached_done) != 0 && errno == EINTR)
            ;
    printf("detached threads finished: %d, sum %ld\n", created, atomic_load(&detached_sum));
    check("detached threads all ran", created == DETACHED &&
                                          atomic_load(&detached_sum) == DETACHED * (DETACHED + 1) / 2);
    int value = -1;
    sem_getvalue(&detached_done, &value);
    check("semaphore drained", value == 0);
    expect_errno("sem_trywait empty", sem_trywait(&detached_done), EAGAIN);
    sem_destroy(&detached_done);
}

/* ---- stopping a worker through a flag ---------------------------------------------- */

static atomic_int stop_flag, worker_started;

static void *polling_worker(void *arg)
{
    (void)arg;
    long loops = 0;
    atomic_store(&worker_started, 1);
    while (!atomic_load(&stop_flag)) {
        loops++;
        if ((loops & 1023) == 0)
            sched_yield();
    }
    return (void *)(intptr_t)(loops > 0 ? 1 : 0);
}

static void test_stop_flag(void)
{
    watchdog(WATCHDOG_SECS, "stop flag");
    pthread_t worker;
    must_spawn(&worker, polling_worker, NULL);
    while (!atomic_load(&worker_started))
        sched_yield();
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    atomic_store(&stop_flag, 1);
    void *ret;
    must_join(worker, &ret);
    check("worker stopped by flag after looping", ret == (void *)1);
}

/* ---- pthread_once ------------------------------------------------------------------ */

#define ONCE_THREADS 8

static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int once_runs;
static atomic_int once_done_before_return;

static void once_init(void)
{
    sched_yield(); /* widen the window for a second caller */
    atomic_fetch_add(&once_runs, 1);
}

static void *once_worker(void *arg)
{
    (void)arg;
    pthread_once(&once, once_init);
    if (atomic_load(&once_runs) == 1)
        atomic_fetch_add(&once_done_before_return, 1);
    return NULL;
}

static void test_once(void)
{
    watchdog(WATCHDOG_SECS, "pthread_once");
    pthread_t threads[ONCE_THREADS];
    for (int i = 0; i < ONCE_THREADS; i++)
        must_spawn(&threads[i], once_worker, NULL);
    for (int i = 0; i < ONCE_THREADS; i++)
        must_join(threads[i], NULL);
    printf("pthread_once init runs: %d\n", atomic_load(&once_runs));
    check("pthread_once ran its routine once", atomic_load(&once_runs) == 1);
    check("pthread_once finished before any caller returned",
          atomic_load(&once_done_before_return) == ONCE_THREADS);
}

/* ---- custom stack sizes ------------------------------------------------------------ */

struct stack_probe {
    size_t requested;
    size_t reported;
    int touched_ok;
};

static __attribute__((noinline)) int touch_stack(size_t bytes)
{
    volatile unsigned char *buf = __builtin_alloca(bytes);
    for (size_t i = 0; i < bytes; i += 512)
        buf[i] = (unsigned char)i;
    int ok = 1;
    for (size_t i = 0; i < bytes; i += 512)
        if (buf[i] != (unsigned char)i)
            ok = 0;
    return ok;
}

static void *stack_worker(void *arg)
{
    struct stack_probe *probe = arg;
    pthread_attr_t attr;
    probe->reported = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &probe->reported);
        pthread_attr_destroy(&attr);
    }
    /* Use most of the stack: three quarters of it in one frame. */
    probe->touched_ok = touch_stack(probe->requested / 4 * 3);
    return NULL;
}

static void test_stack_sizes(void)
{
    watchdog(WATCHDOG_SECS, "custom stack sizes");
    static const size_t sizes[] = {64 * 1024, 1024 * 1024, 4 * 1024 * 1024};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct stack_probe probe = {sizes[i], 0, 0};
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        int rc = pthread_attr_setstacksize(&attr, sizes[i]);
        size_t got = 0;
        pthread_attr_getstacksize(&attr, &got);
        pthread_t thread;
        if (rc == 0)
            rc = pthread_create(&thread, &attr, stack_worker, &probe);
        pthread_attr_destroy(&attr);
        if (rc == 0)
            must_join(thread, NULL);
        char label[64];
        snprintf(label, sizeof label, "stack %zu KiB thread", sizes[i] / 1024);
        expect_error(label, rc, 0);
        snprintf(label, sizeof label, "stack %zu KiB attr round-trips", sizes[i] / 1024);
        check(label, got == sizes[i]);
        snprintf(label, sizeof label, "stack %zu KiB three quarters usable", sizes[i] / 1024);
        check(label, probe.touched_ok);
        snprintf(label, sizeof label, "stack %zu KiB reported at least as requested", sizes[i] / 1024);
        check(label, probe.reported >= sizes[i]);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    expect_error("setstacksize below minimum", pthread_attr_setstacksize(&attr, 1024), EINVAL);
    pthread_attr_destroy(&attr);
}

/* ---- ids, yield, affinity ---------------------------------------------------------- */

#define ID_THREADS 6

struct ids {
    pid_t tid;
    pid_t pid;
    int yields_ok;
};

static void *id_worker(void *arg)
{
    struct ids *ids = arg;
    ids->tid = current_tid();
    ids->pid = getpid();
    ids->yields_ok = 1;
    for (int i = 0; i < 100; i++)
        if (sched_yield() != 0)
            ids->yields_ok = 0;
    return NULL;
}

static void test_ids(void)
{
    watchdog(WATCHDOG_SECS, "thread ids");
    struct ids ids[ID_THREADS];
    pthread_t threads[ID_THREADS];
    for (int i = 0; i < ID_THREADS; i++)
        must_spawn(&threads[i], id_worker, &ids[i]);
    for (int i = 0; i < ID_THREADS; i++)
        must_join(threads[i], NULL);
    pid_t main_tid = current_tid(), pid = getpid();
    check("main thread's tid equals pid", main_tid == pid);
    int distinct = 1, same_pid = 1, yields = 1;
    for (int i = 0; i < ID_THREADS; i++) {
        if (ids[i].tid == main_tid || ids[i].tid <= 0)
            distinct = 0;
        for (int j = 0; j < i; j++)
            if (ids[i].tid == ids[j].tid)
                distinct = 0;
        if (ids[i].pid != pid)
            same_pid = 0;
        if (!ids[i].yields_ok)
            yields = 0;
    }
    check("gettid distinct per thread", distinct);
    check("getpid same in every thread", same_pid);
    check("sched_yield returns 0 in every thread", yields);

    cpu_set_t set;
    CPU_ZERO(&set);
    int rc = sched_getaffinity(0, sizeof set, &set);
    expect_errno("sched_getaffinity", rc, 0);
    int in_set = CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long configured = sysconf(_SC_NPROCESSORS_CONF);
    check("affinity has at least one CPU", in_set >= 1);
    check("affinity fits within the online CPUs", in_set <= online);
    check("online CPUs at least 1 and at most configured", online >= 1 && online <= configured);
    CPU_ZERO(&set);
    expect_errno("sched_getaffinity by pid", sched_getaffinity(pid, sizeof set, &set), 0);
    check("affinity by pid matches", CPU_COUNT(&set) == in_set);
}

int main(void)
{
    test_mutex();
    test_condvar();
    test_rwlock();
    test_barrier();
    test_tls();
    test_join_values();
    test_detached();
    test_stop_flag();
    test_once();
    test_stack_sizes();
    test_ids();
    watchdog(0, NULL);
    if (checks_failed)
        printf("threads: %d failed checks\n", checks_failed);
    else
        printf("threads: done\n");
    return checks_failed ? 1 : 0;
}
