/*
 * Shared helpers for Skiff's C test programs.
 *
 * Every program prints deterministic lines only (no addresses, timings or pids), so
 * that the same static binary run natively and inside Skiff can be compared byte for
 * byte. Errno values are printed by name, never by strerror() text, because musl and
 * glibc word their messages differently.
 */
#ifndef SKIFF_TEST_COMMON_H
#define SKIFF_TEST_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((unused)) const char *errno_name(int e)
{
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case EMLINK: return "EMLINK";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "E?";
    }
}

/* Prints "label: yes" or "label: no". */
static __attribute__((unused)) void check(const char *label, int ok)
{
    printf("%s: %s\n", label, ok ? "yes" : "no");
}

/*
 * Prints the outcome of a call that reports failure as -1 + errno:
 * "label: ok" on success, "label: ENAME" on failure. Returns the result unchanged.
 */
static __attribute__((unused)) long outcome(const char *label, long rc)
{
    if (rc < 0)
        printf("%s: %s\n", label, errno_name(errno));
    else
        printf("%s: ok\n", label);
    return rc;
}

/* Aborts the program with a message naming the failed step; for setup steps whose
 * failure makes the rest of the output meaningless. */
static __attribute__((unused)) void must(const char *label, long rc)
{
    if (rc < 0) {
        printf("FATAL %s: %s\n", label, errno_name(errno));
        fflush(stdout);
        exit(99);
    }
}

#endif
