/*
 * efault: system calls given bad user pointers must fail with EFAULT, not crash.
 *
 * Every call goes through syscall(2) directly: libc wrappers (and the vDSO behind
 * clock_gettime) would touch the pointer in user space and crash natively, which is not
 * what this tests. The bad pointers are an unmapped page (mapped, then unmapped), a
 * kernel-half address and a non-canonical address.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void report(const char *label, long rc)
{
    if (rc < 0)
        printf("%s: %s\n", label, errno_name(errno));
    else
        printf("%s: succeeded with %ld\n", label, rc);
}

int main(void)
{
    void *hole = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    must("mmap", hole == MAP_FAILED ? -1 : 0);
    must("munmap", munmap(hole, 4096));

    struct {
        const char *name;
        void *ptr;
    } bad[] = {
        {"unmapped page", hole},
        {"kernel half", (void *)0xffff800000001000ul},
        {"non-canonical", (void *)0x0000900000000000ul},
    };

    int pipe_fds[2];
    must("pipe", pipe(pipe_fds));
    char file_path[] = "/tmp/skiff-efault-XXXXXX";
    int file_fd = mkstemp(file_path);
    must("mkstemp", file_fd);
    must("unlink temp file", unlink(file_path));
    must("fill temp file", write(file_fd, "0123456789", 10));

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *name = bad[i].name;
        void *ptr = bad[i].ptr;
        char label[128];
        printf("-- %s\n", name);

        snprintf(label, sizeof label, "read file into %s", name);
        lseek(file_fd, 0, SEEK_SET);
        report(label, syscall(SYS_read, file_fd, ptr, 10));

        snprintf(label, sizeof label, "write pipe from %s", name);
        report(label, syscall(SYS_write, pipe_fds[1], ptr, 10));

        snprintf(label, sizeof label, "write stdout from %s", name);
        report(label, syscall(SYS_write, 1, ptr, 10));

        snprintf(label, sizeof label, "stat path at %s", name);
        char statbuf[256];
        report(label, syscall(SYS_newfstatat, AT_FDCWD, ptr, statbuf, 0));

        snprintf(label, sizeof label, "stat result to %s", name);
        report(label, syscall(SYS_newfstatat, AT_FDCWD, "/", ptr, 0));

        snprintf(label, sizeof label, "fstat result to %s", name);
        report(label, syscall(SYS_fstat, file_fd, ptr));

        snprintf(label, sizeof label, "open path at %s", name);
        report(label, syscall(SYS_openat, AT_FDCWD, ptr, O_RDONLY));

        snprintf(label, sizeof label, "clock_gettime to %s", name);
        report(label, syscall(SYS_clock_gettime, CLOCK_MONOTONIC, ptr));

        snprintf(label, sizeof label, "uname to %s", name);
        report(label, syscall(SYS_uname, ptr));

        snprintf(label, sizeof label, "nanosleep request at %s", name);
        report(label, syscall(SYS_nanosleep, ptr, NULL));
    }

    /* A buffer that starts valid and runs into the unmapped page: Linux copies what it
     * can and returns a short count or EFAULT; for a file read of 10 bytes that would
     * cross, it is EFAULT when nothing fits. Start 4 bytes before the hole. */
    unsigned char *edge = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    must("mmap edge", edge == MAP_FAILED ? -1 : 0);
    must("munmap edge tail", munmap(edge + 4096, 4096));
    lseek(file_fd, 0, SEEK_SET);
    long partial = syscall(SYS_read, file_fd, edge + 4096 - 4, 10);
    check("read across the end of a mapping is short or EFAULT",
          (partial < 0 && errno == EFAULT) || (partial >= 0 && partial <= 4));
    check("bytes before the edge were written or untouched",
          partial <= 0 || memcmp(edge + 4096 - 4, "0123", (size_t)partial) == 0);

    report("write zero bytes from NULL", syscall(SYS_write, pipe_fds[1], NULL, 0));
    printf("still running after every bad pointer\n");
    return 0;
}
