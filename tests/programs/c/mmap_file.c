/*
 * mmap_file DIR: file-backed mmap, one line per check.
 *
 * On DIR/mmap_file.dat (three pages of a known pattern; removed at the end):
 *   - MAP_PRIVATE read-write: the mapping shows the file; writes to it stay private
 *     (read() of the file still returns the old bytes, a second mapping too);
 *   - MAP_SHARED read-write: stores, msync(MS_SYNC), munmap, then read() sees them; a
 *     new mapping sees them; a write() to the file shows in a live shared mapping and
 *     a store to the mapping shows in read() at once (one page cache, as on Linux);
 *   - write()/pwrite() into a page the program also stored to through a shared
 *     mapping: both survive the mapping's write-back; ftruncate shows in the mapping;
 *   - a mapping at a page-aligned file offset;
 *   - the part of the last page past end of file reads as zeros, and stores there do
 *     not reach the file;
 *   - MAP_SHARED + PROT_WRITE of a descriptor opened O_RDONLY: EACCES;
 *     MAP_PRIVATE + PROT_WRITE of the same descriptor: allowed;
 *     mapping an O_WRONLY descriptor: EACCES;
 *   - a mapping outlives close() of its descriptor.
 * Output lines are "name: ok|yes|no|ENAME" or "name: FAIL detail" (a failed mmap prints
 * one FAIL line and skips the rest of its group; later groups still run). The last line
 * is "failures: N"; exit status 1 when any check failed, 99 when a setup step failed.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096
#define FILE_SIZE (3 * PAGE)

static int failures;
static char path[4096];

static void result(const char *label, int cond, const char *detail)
{
    if (cond) {
        printf("%s: ok\n", label);
    } else {
        printf("%s: FAIL %s\n", label, detail);
        failures++;
    }
}

/* "label: ok" or "label: ENAME" for a call that returned -1 + errno on failure; counts
 * a failure unless the outcome is `want` (0 = success). */
static void expect(const char *label, long rc, int want)
{
    int got = rc < 0 ? errno : 0;
    printf("%s: %s\n", label, got ? errno_name(got) : "ok");
    if (got != want)
        failures++;
}

/* A failed mmap ends its group of checks with one FAIL line (not the whole program):
 * later groups still run. */
#define MAPPED_OR_RETURN(label, ptr, fd)                                                  \
    do {                                                                                 \
        if ((ptr) == MAP_FAILED) {                                                       \
            printf("%s: FAIL mmap %s (rest of this group skipped)\n", label,             \
                   errno_name(errno));                                                   \
            failures++;                                                                  \
            close(fd);                                                                   \
            return;                                                                      \
        }                                                                                \
    } while (0)

static unsigned char pattern(size_t i)
{
    return (unsigned char)('A' + i % 26);
}

/* Reads the whole file with read() into buf (FILE_SIZE + 1 bytes); returns the length. */
static ssize_t read_back(unsigned char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    must("open for read-back", fd);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - got);
        must("read-back", r);
        if (r == 0 || got + (size_t)r == cap) {
            got += (size_t)r;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    return (ssize_t)got;
}

static int matches_pattern(const unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (p[i] != pattern(i))
            return 0;
    return 1;
}

static void make_file(size_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    must("create file", fd);
    static unsigned char buf[FILE_SIZE];
    for (size_t i = 0; i < size; i++)
        buf[i] = pattern(i);
    if (write(fd, buf, size) != (ssize_t)size)
        must("write file", -1);
    close(fd);
}

static void check_private(void)
{
    static unsigned char back[FILE_SIZE + 1];
    make_file(FILE_SIZE);
    int fd = open(path, O_RDWR);
    must("open rw", fd);
    unsigned char *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    MAPPED_OR_RETURN("private_map", p, fd);
    result("private_read", matches_pattern(p, 0, FILE_SIZE), "mapping differs from the file");
    p[10] = '#';
    p[PAGE + 20] = '#';
    result("private_write_visible_in_mapping", p[10] == '#' && p[PAGE + 20] == '#',
           "store did not stick");
    ssize_t n = read_back(back, sizeof back);
    result("private_write_not_in_file", n == FILE_SIZE && matches_pattern(back, 0, FILE_SIZE),
           "the file changed");
    unsigned char *q = mmap(NULL, FILE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
    MAPPED_OR_RETURN("private_map_2", q, fd);
    result("private_write_not_in_other_mapping", matches_pattern(q, 0, FILE_SIZE),
           "the second mapping shows the private store");
    munmap(q, FILE_SIZE);
    must("munmap private", munmap(p, FILE_SIZE));
    close(fd);
}

static void check_shared(void)
{
    static unsigned char back[FILE_SIZE + 1];
    make_file(FILE_SIZE);
    int fd = open(path, O_RDWR);
    must("open rw", fd);
    unsigned char *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MAPPED_OR_RETURN("shared_map", p, fd);
    result("shared_read", matches_pattern(p, 0, FILE_SIZE), "mapping differs from the file");
    memcpy(p + 100, "shared-1", 8);
    memcpy(p + 2 * PAGE + 5, "shared-2", 8);
    long rc = msync(p, FILE_SIZE, MS_SYNC);
    printf("shared_msync: %s\n", rc < 0 ? errno_name(errno) : "ok");
    if (rc < 0)
        failures++;
    rc = munmap(p, FILE_SIZE);
    printf("shared_munmap: %s\n", rc < 0 ? errno_name(errno) : "ok");
    if (rc < 0)
        failures++;
    ssize_t n = read_back(back, sizeof back);
    int landed = n == FILE_SIZE && memcmp(back + 100, "shared-1", 8) == 0 &&
                 memcmp(back + 2 * PAGE + 5, "shared-2", 8) == 0;
    int rest = n == FILE_SIZE && matches_pattern(back, 0, 100) &&
               matches_pattern(back, 108, 2 * PAGE + 5) &&
               matches_pattern(back, 2 * PAGE + 13, FILE_SIZE);
    result("shared_changes_in_file", landed, "read() does not show the stores");
    result("shared_rest_unchanged", rest, "other bytes changed");
    struct stat st;
    must("fstat", fstat(fd, &st));
    result("shared_size_unchanged", st.st_size == FILE_SIZE, "file size changed");

    /* A new mapping sees the stores; a write() shows in a live shared mapping. */
    p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MAPPED_OR_RETURN("shared_map_2", p, fd);
    result("shared_new_mapping_sees_changes", memcmp(p + 100, "shared-1", 8) == 0,
           "a new mapping shows old bytes");
    must("pwrite", pwrite(fd, "written!", 8, 200));
    result("shared_mapping_sees_write", memcmp(p + 200, "written!", 8) == 0,
           "the mapping shows old bytes after pwrite");
    /* And the reverse without msync: a store is visible to read() at once (one page
     * cache on Linux). */
    memcpy(p + PAGE, "store-3!", 8);
    unsigned char tmp[8];
    must("pread", pread(fd, tmp, 8, PAGE));
    result("read_sees_shared_store", memcmp(tmp, "store-3!", 8) == 0,
           "pread does not show a store to the mapping");
    /* The mapping outlives the descriptor. */
    close(fd);
    memcpy(p + PAGE + 8, "closed!!", 8);
    rc = msync(p, FILE_SIZE, MS_SYNC);
    must("munmap shared (2)", munmap(p, FILE_SIZE));
    n = read_back(back, sizeof back);
    result("shared_after_close",
           rc == 0 && n == FILE_SIZE && memcmp(back + PAGE + 8, "closed!!", 8) == 0,
           "store after close() did not reach the file");

    /* A descriptor opened with O_APPEND still writes a mapping back in place. */
    fd = open(path, O_RDWR | O_APPEND);
    must("open append", fd);
    p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MAPPED_OR_RETURN("append_map", p, fd);
    memcpy(p + 300, "append!!", 8);
    must("munmap append", munmap(p, FILE_SIZE));
    close(fd);
    n = read_back(back, sizeof back);
    result("shared_append_fd_in_place", n == FILE_SIZE && memcmp(back + 300, "append!!", 8) == 0,
           "write-back through an O_APPEND descriptor went elsewhere");

    /* A mapping at a page-aligned offset shows that part of the file. */
    fd = open(path, O_RDONLY);
    must("open ro", fd);
    p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 2 * PAGE);
    MAPPED_OR_RETURN("offset_map", p, fd);
    result("offset_mapping",
           memcmp(p + 5, "shared-2", 8) == 0 && p[PAGE - 1] == pattern(FILE_SIZE - 1),
           "mapping at offset shows the wrong bytes");
    munmap(p, PAGE);
    void *bad = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 100);
    expect("unaligned_offset", bad == MAP_FAILED ? -1 : 0, EINVAL);
    close(fd);
}

/* write(2) and a store to the same page of a shared mapping: neither is lost when the
 * mapping is written back, and a truncation shows in the mapping. */
static void check_write_under_mapping(void)
{
    static unsigned char back[FILE_SIZE + 1];
    make_file(FILE_SIZE);
    int fd = open(path, O_RDWR);
    must("open rw", fd);
    unsigned char *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MAPPED_OR_RETURN("under_map", p, fd);
    p[0] = 'M';
    must("pwrite", pwrite(fd, "WRITTEN", 7, 100));
    /* write() at the offset, reaching into the next page. */
    must("lseek", lseek(fd, PAGE - 3, SEEK_SET));
    must("write", write(fd, "across", 6));
    p[PAGE + 10] = 'N';
    must("munmap", munmap(p, FILE_SIZE));
    ssize_t n = read_back(back, sizeof back);
    result("pwrite_survives_writeback", n == FILE_SIZE && memcmp(back + 100, "WRITTEN", 7) == 0,
           "the mapping's write-back overwrote pwrite");
    result("write_across_pages_survives",
           n == FILE_SIZE && memcmp(back + PAGE - 3, "across", 6) == 0,
           "the mapping's write-back overwrote write");
    result("mapped_stores_survive_write", n == FILE_SIZE && back[0] == 'M' && back[PAGE + 10] == 'N',
           "a store to the mapping was lost");
    result("rest_of_page_unchanged", n == FILE_SIZE && matches_pattern(back, 1, 100) &&
                                         matches_pattern(back, 107, PAGE - 3),
           "other bytes changed");

    /* Shrinking the file zeroes what the mapping shows past the new end; growing it
     * again shows zeros there, and the stores before the end stay. */
    p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MAPPED_OR_RETURN("truncate_map", p, fd);
    p[10] = 'T';
    p[PAGE + 50] = 'U';
    must("ftruncate small", ftruncate(fd, PAGE + 20));
    must("ftruncate big", ftruncate(fd, FILE_SIZE));
    result("mapping_sees_truncation", p[PAGE + 50] == 0 && p[PAGE + 19] == pattern(PAGE + 19),
           "the mapping shows bytes the truncation removed");
    must("msync", msync(p, FILE_SIZE, MS_SYNC));
    must("munmap", munmap(p, FILE_SIZE));
    n = read_back(back, sizeof back);
    result("truncation_survives_writeback",
           n == FILE_SIZE && back[10] == 'T' && back[PAGE + 50] == 0 && back[PAGE + 20] == 0,
           "write-back brought truncated bytes back");
    close(fd);
}

static void check_eof_page(void)
{
    static unsigned char back[FILE_SIZE + 1];
    size_t size = PAGE + 1000;
    make_file(size);
    int fd = open(path, O_RDWR);
    must("open rw", fd);
    unsigned char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MAPPED_OR_RETURN("eof_map", p, fd);
    int zeros = 1;
    for (size_t i = size; i < 2 * PAGE; i++)
        if (p[i])
            zeros = 0;
    printf("eof_page_tail_zero: %s\n", zeros ? "yes" : "no");
    if (!zeros)
        failures++;
    result("eof_page_data", matches_pattern(p, 0, size), "mapping differs from the file");
    p[size + 10] = 'X'; /* past EOF, inside the last page: never written back */
    p[size - 1] = '!';
    must("msync eof", msync(p, 2 * PAGE, MS_SYNC));
    must("munmap eof", munmap(p, 2 * PAGE));
    close(fd);
    ssize_t n = read_back(back, sizeof back);
    result("eof_store_not_in_file", n == (ssize_t)size && back[size - 1] == '!',
           "file size or last byte wrong");
}

static void check_access(void)
{
    make_file(FILE_SIZE);
    int fd = open(path, O_RDONLY);
    must("open ro", fd);
    void *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect("shared_write_on_readonly_fd", p == MAP_FAILED ? -1 : 0, EACCES);
    if (p != MAP_FAILED)
        munmap(p, FILE_SIZE);
    p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    expect("private_write_on_readonly_fd", p == MAP_FAILED ? -1 : 0, 0);
    if (p != MAP_FAILED)
        munmap(p, FILE_SIZE);
    p = mmap(NULL, FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    expect("shared_read_on_readonly_fd", p == MAP_FAILED ? -1 : 0, 0);
    if (p != MAP_FAILED)
        munmap(p, FILE_SIZE);
    close(fd);
    fd = open(path, O_WRONLY);
    must("open wo", fd);
    p = mmap(NULL, FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    expect("map_writeonly_fd", p == MAP_FAILED ? -1 : 0, EACCES);
    if (p != MAP_FAILED)
        munmap(p, FILE_SIZE);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mmap_file DIR\n");
        return 2;
    }
    umask(022);
    snprintf(path, sizeof path, "%s/mmap_file.dat", argv[1]);
    check_private();
    check_shared();
    check_write_under_mapping();
    check_eof_page();
    check_access();
    must("unlink", unlink(path));
    printf("failures: %d\n", failures);
    return failures ? 1 : 0;
}
