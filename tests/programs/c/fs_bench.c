/*
 * fs_bench DIR SIZE_MB: file-system throughput, a benchmark (not a test).
 *
 * On DIR/fs_bench.dat (removed at the end):
 *   seq_write    SIZE_MB MiB in 1 MiB write()s, then fsync; timed including the fsync
 *   seq_read     the whole file in 1 MiB read()s (from the page cache where one exists)
 *   rand_read    2000 pread()s of 4 KiB at 4 KiB-aligned offsets (fixed seed)
 *   rand_write   2000 pwrite()s of 4 KiB at 4 KiB-aligned offsets (fixed seed), then
 *                fsync; timed including the fsync
 * Every block carries a pattern derived from its number (and a generation for the
 * random writes); reads are checked against it, so a fast but wrong file system shows
 * up as "verify: FAIL ...". Output, one "name value" pair per line:
 *
 *   size_MB 64
 *   seq_write_MBps 123.4
 *   seq_read_MBps 456.7
 *   rand_read_4k_ops 12345
 *   rand_write_4k_ops 1234
 *   verify: ok
 *
 * Times come from clock_gettime(CLOCK_MONOTONIC). Exit status 1 on a failed check or
 * I/O error (the line says which), 2 on bad arguments.
 */
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define CHUNK (1024 * 1024)
#define RAND_OPS 2000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t next_rand(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Fills one 4 KiB block with the pattern of block `blk`, generation `gen`. */
static void fill_block(unsigned char *p, uint64_t blk, uint64_t gen)
{
    uint64_t *w = (uint64_t *)p;
    for (uint64_t i = 0; i < BLOCK / 8; i++)
        w[i] = (blk * 0x9e3779b97f4a7c15ull + i) ^ (gen << 56);
}

static int block_ok(const unsigned char *p, uint64_t blk, uint64_t gen)
{
    unsigned char want[BLOCK] __attribute__((aligned(8)));
    fill_block(want, blk, gen);
    return memcmp(p, want, BLOCK) == 0;
}

static void fail(const char *what, const char *detail)
{
    printf("verify: FAIL %s: %s\n", what, detail);
    fflush(stdout);
    exit(1);
}

static void io_fail(const char *what)
{
    fail(what, errno_name(errno));
}

/* pread/pwrite until done; 0 on success. */
static int full_pread(int fd, unsigned char *p, size_t n, off_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, off);
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int full_pwrite(int fd, const unsigned char *p, size_t n, off_t off)
{
    while (n) {
        ssize_t r = pwrite(fd, p, n, off);
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fs_bench DIR SIZE_MB\n");
        return 2;
    }
    char *end;
    long size_mb = strtol(argv[2], &end, 10);
    if (*end || size_mb <= 0 || size_mb > 1 << 20) {
        fprintf(stderr, "fs_bench: SIZE_MB must be a positive number of MiB\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/fs_bench.dat", argv[1]);
    uint64_t blocks = (uint64_t)size_mb * (CHUNK / BLOCK);
    unsigned char *buf = aligned_alloc(4096, CHUNK);
    if (!buf)
        fail("malloc", "ENOMEM");
    printf("size_MB %ld\n", size_mb);
    fflush(stdout);

    /* Sequential write + fsync. */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        io_fail("open");
    double t0 = now();
    for (uint64_t blk = 0; blk < blocks; blk += CHUNK / BLOCK) {
        for (uint64_t i = 0; i < CHUNK / BLOCK; i++)
            fill_block(buf + i * BLOCK, blk + i, 0);
        if (full_pwrite(fd, buf, CHUNK, (off_t)(blk * BLOCK)) < 0)
            io_fail("seq write");
    }
    if (fsync(fd) < 0)
        io_fail("fsync after seq write");
    double t1 = now();
    printf("seq_write_MBps %.1f\n", (double)size_mb / (t1 - t0));
    fflush(stdout);

    /* Sequential read, checked. Plain read() to exercise the file offset. */
    if (lseek(fd, 0, SEEK_SET) < 0)
        io_fail("lseek");
    t0 = now();
    uint64_t blk = 0;
    for (;;) {
        size_t got = 0;
        while (got < CHUNK) {
            ssize_t r = read(fd, buf + got, CHUNK - got);
            if (r < 0)
                io_fail("seq read");
            if (r == 0)
                break;
            got += (size_t)r;
        }
        if (got % BLOCK)
            fail("seq read", "partial block at end of file");
        for (size_t i = 0; i < got / BLOCK; i++, blk++)
            if (!block_ok(buf + i * BLOCK, blk, 0))
                fail("seq read", "block content differs from what was written");
        if (got < CHUNK)
            break;
    }
    t1 = now();
    if (blk != blocks)
        fail("seq read", "file shorter than written");
    printf("seq_read_MBps %.1f\n", (double)size_mb / (t1 - t0));
    fflush(stdout);

    /* Random 4 KiB reads, checked. */
    t0 = now();
    for (int op = 0; op < RAND_OPS; op++) {
        uint64_t b = next_rand() % blocks;
        if (full_pread(fd, buf, BLOCK, (off_t)(b * BLOCK)) < 0)
            io_fail("random read");
        if (!block_ok(buf, b, 0))
            fail("random read", "block content differs");
    }
    t1 = now();
    printf("rand_read_4k_ops %.0f\n", RAND_OPS / (t1 - t0));
    fflush(stdout);

    /* Random 4 KiB writes (generation 1) + fsync. */
    uint64_t *written = malloc(RAND_OPS * sizeof *written);
    if (!written)
        fail("malloc", "ENOMEM");
    t0 = now();
    for (int op = 0; op < RAND_OPS; op++) {
        uint64_t b = next_rand() % blocks;
        written[op] = b;
        fill_block(buf, b, 1);
        if (full_pwrite(fd, buf, BLOCK, (off_t)(b * BLOCK)) < 0)
            io_fail("random write");
    }
    if (fsync(fd) < 0)
        io_fail("fsync after random writes");
    t1 = now();
    printf("rand_write_4k_ops %.0f\n", RAND_OPS / (t1 - t0));
    fflush(stdout);

    /* Every block written randomly now holds generation 1; a few untouched ones 0. */
    for (int op = 0; op < RAND_OPS; op++) {
        if (full_pread(fd, buf, BLOCK, (off_t)(written[op] * BLOCK)) < 0)
            io_fail("read back");
        if (!block_ok(buf, written[op], 1))
            fail("read back", "randomly written block lost its new content");
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        io_fail("fstat");
    if ((uint64_t)st.st_size != blocks * BLOCK)
        fail("fstat", "size changed");
    close(fd);
    if (unlink(path) < 0)
        io_fail("unlink");
    printf("verify: ok\n");
    free(written);
    free(buf);
    return 0;
}
