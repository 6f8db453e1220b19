/*
 * openat2: the versioned open_how struct and the RESOLVE_* restrictions, in a fresh
 * directory under /tmp. Lines print errno names so the native and guest runs compare.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

static long open2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    struct how h = {flags, mode, resolve};
    return syscall(SYS_openat2, dirfd, path, &h, sizeof h);
}

/* Prints `label: OK` (closing the descriptor) or the errno name. */
static void try_open(const char *label, long fd)
{
    if (fd >= 0) {
        printf("%s: OK\n", label);
        close((int)fd);
    } else {
        printf("%s: %s\n", label, errno_name(errno));
    }
}

static char workdir[] = "/tmp/skiff-openat2-XXXXXX";

int main(void)
{
    watchdog(20, "openat2");
    if (!mkdtemp(workdir)) {
        printf("mkdtemp: %s\n", errno_name(errno));
        return 1;
    }
    int dir = open(workdir, O_RDONLY | O_DIRECTORY);
    must("open workdir", dir);
    must("mkdir sub", mkdirat(dir, "sub", 0755));
    int f = openat(dir, "sub/file", O_CREAT | O_WRONLY, 0644);
    must("create file", f);
    close(f);
    must("symlink", symlinkat("sub/file", dir, "link"));
    must("symlink up", symlinkat("../..", dir, "sub/up"));
    int sub = openat(dir, "sub", O_RDONLY | O_DIRECTORY);
    must("open sub", sub);

    try_open("plain", open2(dir, "sub/file", O_RDONLY, 0, 0));
    try_open("create", open2(dir, "new", O_CREAT | O_WRONLY, 0600, 0));
    try_open("unknown_flag", open2(dir, "sub/file", O_RDONLY | (1ULL << 40), 0, 0));
    try_open("mode_without_creat", open2(dir, "sub/file", O_RDONLY, 0644, 0));
    try_open("unknown_resolve", open2(dir, "sub/file", O_RDONLY, 0, 1ULL << 20));
    try_open("path_with_rdwr", open2(dir, "sub/file", O_PATH | O_RDWR, 0, 0));
    {
        struct how h = {O_RDONLY, 0, 0};
        try_open("short_struct", syscall(SYS_openat2, dir, "sub/file", &h, 16));
        unsigned char big[64] = {0};
        memcpy(big, &h, sizeof h);
        try_open("long_zero_tail", syscall(SYS_openat2, dir, "sub/file", big, sizeof big));
        big[40] = 1;
        try_open("long_nonzero_tail", syscall(SYS_openat2, dir, "sub/file", big, sizeof big));
        try_open("bad_pointer", syscall(SYS_openat2, dir, "sub/file", (void *)8, sizeof h));
    }
    try_open("no_symlinks_plain", open2(dir, "sub/file", O_RDONLY, 0, RESOLVE_NO_SYMLINKS));
    try_open("no_symlinks_link", open2(dir, "link", O_RDONLY, 0, RESOLVE_NO_SYMLINKS));
    try_open("no_symlinks_nofollow_path",
             open2(dir, "link", O_PATH | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS));
    try_open("beneath_inside", open2(dir, "sub/../sub/file", O_RDONLY, 0, RESOLVE_BENEATH));
    try_open("beneath_dotdot", open2(sub, "../sub/file", O_RDONLY, 0, RESOLVE_BENEATH));
    try_open("beneath_absolute", open2(dir, "/tmp", O_RDONLY, 0, RESOLVE_BENEATH));
    try_open("beneath_symlink_escape", open2(sub, "up/tmp", O_RDONLY, 0, RESOLVE_BENEATH));
    try_open("in_root_absolute", open2(dir, "/sub/file", O_RDONLY, 0, RESOLVE_IN_ROOT));
    try_open("in_root_dotdot", open2(sub, "../../../file", O_RDONLY, 0, RESOLVE_IN_ROOT));
    try_open("in_root_and_beneath",
             open2(dir, "sub/file", O_RDONLY, 0, RESOLVE_IN_ROOT | RESOLVE_BENEATH));
    int root = open("/", O_RDONLY | O_DIRECTORY);
    must("open /", root);
    try_open("no_xdev_proc", open2(root, "proc/self/status", O_RDONLY, 0, RESOLVE_NO_XDEV));
    try_open("no_xdev_same", open2(dir, "sub/file", O_RDONLY, 0, RESOLVE_NO_XDEV));
    close(root);

    unlinkat(dir, "new", 0);
    unlinkat(dir, "link", 0);
    unlinkat(dir, "sub/up", 0);
    unlinkat(dir, "sub/file", 0);
    unlinkat(dir, "sub", AT_REMOVEDIR);
    close(sub);
    close(dir);
    rmdir(workdir);
    return checks_failed ? 1 : 0;
}
