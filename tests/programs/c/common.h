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
    case EDEADLK: return "EDEADLK";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "E?";
    }
}

/* How many check()/expect_error() calls failed; a program may exit with
 * checks_failed != 0 so that a failure also shows in its status. */
static __attribute__((unused)) int checks_failed;

/* Prints "label: yes" or "label: no". */
static __attribute__((unused)) void check(const char *label, int ok)
{
    printf("%s: %s\n", label, ok ? "yes" : "no");
    if (!ok)
        checks_failed++;
}

/*
 * Prints "label: NAME" for an error number (0 prints "OK") and counts a failed check
 * unless it is `expected`. For calls that return an error number (pthread_*) directly.
 */
static __attribute__((unused)) void expect_error(const char *label, int err, int expected)
{
    printf("%s: %s\n", label, errno_name(err));
    if (err != expected)
        checks_failed++;
}

/* expect_error() for a call that reports failure as -1 + errno (0 expected = success). */
static __attribute__((unused)) void expect_errno(const char *label, long rc, int expected)
{
    expect_error(label, rc < 0 ? errno : 0, expected);
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

/*
 * A watchdog for steps that could block forever on a broken kernel: watchdog(secs,
 * phase) (re)arms alarm(secs); if it fires, the program prints
 * "FATAL watchdog: <phase> did not finish" and exits 98, so a hang fails fast with a
 * message naming the step. watchdog(0, NULL) disarms it. Programs that test SIGALRM
 * themselves must not use this.
 */
#include <signal.h>
#include <unistd.h>

static __attribute__((unused)) const char *volatile watchdog_phase = "start-up";

static __attribute__((unused)) void watchdog_fired(int sig)
{
    (void)sig;
    const char *phase = watchdog_phase;
    fflush(stdout);
    static const char head[] = "FATAL watchdog: ";
    static const char tail[] = " did not finish\n";
    (void)!write(1, head, sizeof head - 1);
    (void)!write(1, phase, strlen(phase));
    (void)!write(1, tail, sizeof tail - 1);
    _exit(98);
}

static __attribute__((unused)) void watchdog(unsigned secs, const char *phase)
{
    static int installed;
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = watchdog_fired;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        installed = 1;
    }
    if (phase)
        watchdog_phase = phase;
    alarm(secs);
}

#endif
