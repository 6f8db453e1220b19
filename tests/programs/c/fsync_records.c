/*
 * fsync_records: durability of fsync'ed appends, for a test that kills the VM.
 *
 *   fsync_records write DIR N     truncates DIR/records.dat, fsyncs it and DIR, then
 *                                 appends N 64-byte records; after each record it calls
 *                                 fsync and, once fsync has returned, prints
 *                                 "synced I" (I counts from 0) and flushes stdout. After
 *                                 the last record it prints "all synced" and sleeps
 *                                 forever: the test kills the VM at a moment of its
 *                                 choosing.
 *   fsync_records verify DIR [MIN]
 *                                 reads DIR/records.dat and checks the records in
 *                                 order: record I must carry index I and a valid
 *                                 checksum. Prints "records K" (K = the number of
 *                                 leading valid records).
 *                                 Without MIN every complete record must be valid: it
 *                                 then prints "ok" (a torn tail shorter than one record
 *                                 is reported as "partial_tail N" before "ok"), or
 *                                 "bad record J" and exits 1.
 *                                 With MIN (the number of records whose "synced" line
 *                                 the test saw) only the first MIN records must be
 *                                 valid; whatever follows them was never fsync'ed and
 *                                 may be missing or garbage. Prints "ok" when K >= MIN,
 *                                 else "missing synced records" and exits 1.
 *
 * Record layout (little-endian, 64 bytes, so a record never straddles a 512-byte
 * sector): u32 magic "SKRC", u32 index, 52 payload bytes derived from the index,
 * u32 FNV-1a checksum of the first 60 bytes.
 */
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD_SIZE 64
#define MAGIC 0x43524b53u /* "SKRC" read as a little-endian u32 */

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void make_record(unsigned char *rec, uint32_t index)
{
    put32(rec, MAGIC);
    put32(rec + 4, index);
    for (int i = 0; i < 52; i++)
        rec[8 + i] = (unsigned char)(index * 31u + (uint32_t)i * 7u + 1u);
    put32(rec + 60, fnv1a(rec, 60));
}

/* A record is valid when it is exactly what make_record(expected) would produce. */
static int record_valid(const unsigned char *rec, uint32_t expected)
{
    unsigned char want[RECORD_SIZE];
    make_record(want, expected);
    return memcmp(rec, want, RECORD_SIZE) == 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fsync_records write DIR N | fsync_records verify DIR [MIN]\n");
    exit(2);
}

static int do_write(const char *dir, long n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/records.dat", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    must("open records.dat", fd);
    must("fsync records.dat (empty)", fsync(fd));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    must("open DIR", dfd);
    must("fsync DIR", fsync(dfd));
    close(dfd);
    printf("created\n");
    fflush(stdout);

    unsigned char rec[RECORD_SIZE];
    for (long i = 0; i < n; i++) {
        make_record(rec, (uint32_t)i);
        ssize_t w = write(fd, rec, sizeof rec);
        if (w != (ssize_t)sizeof rec) {
            printf("FATAL write record %ld: %s\n", i, w < 0 ? errno_name(errno) : "short write");
            fflush(stdout);
            return 1;
        }
        if (fsync(fd) < 0) {
            printf("FATAL fsync record %ld: %s\n", i, errno_name(errno));
            fflush(stdout);
            return 1;
        }
        printf("synced %ld\n", i);
        fflush(stdout);
    }
    printf("all synced\n");
    fflush(stdout);
    for (;;)
        pause();
}

static int do_verify(const char *dir, long min)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/records.dat", dir);
    int fd = open(path, O_RDONLY);
    must("open records.dat", fd);
    struct stat st;
    must("fstat records.dat", fstat(fd, &st));

    unsigned char rec[RECORD_SIZE];
    long valid = 0, first_bad = -1, complete = 0;
    size_t tail = 0;
    for (;;) {
        size_t got = 0;
        while (got < sizeof rec) {
            ssize_t r = read(fd, rec + got, sizeof rec - got);
            must("read records.dat", r);
            if (r == 0)
                break;
            got += (size_t)r;
        }
        if (got < sizeof rec) {
            tail = got;
            break;
        }
        if (first_bad < 0 && record_valid(rec, (uint32_t)complete))
            valid++;
        else if (first_bad < 0)
            first_bad = complete;
        complete++;
    }
    close(fd);
    if ((long long)st.st_size != (long long)complete * RECORD_SIZE + (long long)tail) {
        printf("size mismatch: st_size %lld, read %lld bytes\n", (long long)st.st_size,
               (long long)complete * RECORD_SIZE + (long long)tail);
        return 1;
    }

    printf("records %ld\n", valid);
    if (min >= 0) {
        if (valid >= min) {
            printf("ok\n");
            return 0;
        }
        printf("missing synced records: have %ld, need %ld\n", valid, min);
        return 1;
    }
    if (first_bad >= 0) {
        printf("bad record %ld\n", first_bad);
        return 1;
    }
    if (tail)
        printf("partial_tail %zu\n", tail);
    printf("ok\n");
    return 0;
}

static long parse_count(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], parse_count(argv[3]));
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "verify") == 0)
        return do_verify(argv[2], argc == 4 ? parse_count(argv[3]) : -1);
    usage();
    return 2;
}
