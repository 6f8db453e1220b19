/*
 * file_semantics DIR: POSIX file-system semantics, one line per check.
 *
 * Works in DIR/file_semantics.work (removed first if a previous run left it, and
 * removed again at the end). Every line is "name: result", where the result is "ok",
 * an errno name, "yes"/"no", a value, or "FAIL <what went wrong>". Paths, inode numbers,
 * sizes of directories and times are never printed, so the output of one static binary
 * is the same natively on ext4 or tmpfs and in Skiff on its tmpfs root (/tmp).
 *
 * On a FAT volume a few lines differ because FAT cannot express the feature; those are
 * accepted without failing and are the only lines that should differ:
 *   symlink: EPERM              (ok elsewhere)
 *   o_nofollow_symlink: n/a     (ELOOP elsewhere; this and the next two need a symlink)
 *   readlink: n/a               (ok elsewhere)
 *   symlink_follow: n/a         (ok elsewhere)
 *   link: EPERM                 (ok elsewhere)
 *   link_nlink: n/a             (2 elsewhere; this and the next need a hard link)
 *   link_same_content: n/a      (ok elsewhere)
 *   case_insensitive: yes       (no elsewhere)
 * (FAT has no permission bits, but Skiff keeps chmod's in memory while the volume is
 * mounted, so chmod_recorded is "yes" there too.)
 * Any other deviation prints FAIL or an unexpected errno name and makes the exit status
 * non-zero (1); a broken setup step prints "FATAL <step>: <errno>" and exits 99.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

#define WORK_NAME "file_semantics.work"

static int failures;

/* "label: ok" when cond holds, else "label: FAIL <detail>" and a counted failure. */
static void result(const char *label, int cond, const char *fmt, ...)
{
    if (cond) {
        printf("%s: ok\n", label);
        return;
    }
    printf("%s: FAIL ", label);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failures++;
}

static const char *err_or_ok(long rc)
{
    return rc < 0 ? errno_name(errno) : "ok";
}

/* Prints "label: ok" or "label: ENAME"; counts a failure unless the outcome is `want`
 * (0 for success) or `alt` (another accepted outcome, -1 for none). Returns rc. */
static long expect2(const char *label, long rc, int want, int alt)
{
    int got = rc < 0 ? errno : 0;
    printf("%s: %s\n", label, got ? errno_name(got) : "ok");
    if (got != want && got != alt)
        failures++;
    errno = got;
    return rc;
}

static long expect(const char *label, long rc, int want)
{
    return expect2(label, rc, want, -1);
}

static void write_file(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    must("create file", fd);
    size_t len = strlen(content);
    if (write(fd, content, len) != (ssize_t)len)
        must("write file", -1);
    must("close file", close(fd));
}

/* Reads up to cap-1 bytes of path into buf (NUL-terminated); returns length or -1. */
static long read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    buf[got] = 0;
    close(fd);
    return (long)got;
}

static int file_is(const char *path, const char *want)
{
    char buf[256];
    return read_file(path, buf, sizeof buf) >= 0 && strcmp(buf, want) == 0;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Whether `name` is an entry of directory `dir` (readdir). -1 when dir can't be read. */
static int listed(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, name) == 0)
            found = 1;
    closedir(d);
    return found;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Removes path and everything below it (no symlink following). */
static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char child[PATH_MAX];
            /* Collect first: removing while reading is tested elsewhere, not relied on. */
            char **names = NULL;
            size_t count = 0;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                names = realloc(names, (count + 1) * sizeof *names);
                names[count++] = strdup(e->d_name);
            }
            closedir(d);
            for (size_t i = 0; i < count; i++) {
                snprintf(child, sizeof child, "%s/%s", path, names[i]);
                rm_rf(child);
                free(names[i]);
            }
            free(names);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---------------------------------------------------------------- the checks */

static void check_rename(void)
{
    write_file("ra", "new contents");
    write_file("rb", "old contents");
    long rc = rename("ra", "rb");
    result("rename_over_existing", rc == 0 && file_is("rb", "new contents") && !exists("ra"),
           "rename %s, rb holds new: %d, ra gone: %d", err_or_ok(rc), file_is("rb", "new contents"),
           !exists("ra"));

    /* An open descriptor follows the file across a rename. */
    int fd = open("rb", O_RDONLY);
    must("open rb", fd);
    rc = rename("rb", "rc");
    char buf[32] = {0};
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    result("rename_open_file", rc == 0 && r == 12 && strcmp(buf, "new contents") == 0,
           "rename %s, read %zd", err_or_ok(rc), r);
    expect("rename_to_itself", rename("rc", "rc"), 0);
    expect("rename_missing_source", rename("no-such-file", "rd"), ENOENT);

    must("mkdir rdir1", mkdir("rdir1", 0755));
    write_file("rdir1/inner", "inner");
    must("mkdir rdir2", mkdir("rdir2", 0755));
    rc = rename("rdir1", "rdir2");
    result("rename_dir_over_empty_dir",
           rc == 0 && file_is("rdir2/inner", "inner") && !exists("rdir1"),
           "rename %s", err_or_ok(rc));
    must("mkdir rdir3", mkdir("rdir3", 0755));
    write_file("rdir3/keep", "keep");
    expect2("rename_dir_over_nonempty_dir", rename("rdir2", "rdir3"), ENOTEMPTY, EEXIST);
    result("rename_dir_over_nonempty_dir_unchanged",
           file_is("rdir2/inner", "inner") && file_is("rdir3/keep", "keep"), "contents changed");
    expect("rename_file_over_dir", rename("rc", "rdir3"), EISDIR);
    expect("rename_dir_over_file", rename("rdir3", "rc"), ENOTDIR);
    expect("rename_dir_into_itself", rename("rdir3", "rdir3/sub"), EINVAL);

    write_file("rn1", "one");
    write_file("rn2", "two");
    expect("renameat2_noreplace_existing",
           syscall(SYS_renameat2, AT_FDCWD, "rn1", AT_FDCWD, "rn2", RENAME_NOREPLACE), EEXIST);
    result("renameat2_noreplace_existing_unchanged",
           file_is("rn1", "one") && file_is("rn2", "two"), "a file changed");
    expect("renameat2_noreplace_new",
           syscall(SYS_renameat2, AT_FDCWD, "rn1", AT_FDCWD, "rn3", RENAME_NOREPLACE), 0);
    result("renameat2_noreplace_new_moved", file_is("rn3", "one") && !exists("rn1"),
           "rn3 holds one: %d, rn1 gone: %d", file_is("rn3", "one"), !exists("rn1"));
}

static void check_unlink_open(void)
{
    int fd = open("uo", O_RDWR | O_CREAT | O_TRUNC, 0644);
    must("create uo", fd);
    must("write uo", write(fd, "hello", 5));
    must("unlink uo", unlink("uo"));
    char buf[16] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    result("unlink_open_read", r == 5 && strcmp(buf, "hello") == 0, "pread %zd", r);
    ssize_t w = pwrite(fd, " world", 6, 5);
    memset(buf, 0, sizeof buf);
    r = pread(fd, buf, sizeof buf - 1, 0);
    result("unlink_open_write", w == 6 && r == 11 && strcmp(buf, "hello world") == 0,
           "pwrite %zd, pread %zd", w, r);
    struct stat st;
    must("fstat uo", fstat(fd, &st));
    printf("unlink_open_nlink: %lu\n", (unsigned long)st.st_nlink);
    if (st.st_nlink != 0)
        failures++;
    printf("unlink_open_size: %lld\n", (long long)st.st_size);
    if (st.st_size != 11)
        failures++;
    printf("unlink_open_listed: %s\n", listed(".", "uo") ? "yes" : "no");
    if (listed(".", "uo"))
        failures++;
    expect("unlink_open_stat_name", stat("uo", &st), ENOENT);
    must("close uo", close(fd));
    /* The name is free again. */
    write_file("uo", "again");
    result("unlink_open_name_reusable", file_is("uo", "again"), "recreated file differs");
    expect("unlink_missing", unlink("uo-missing"), ENOENT);
    expect("unlink_dir", unlink("rdir3"), EISDIR);
    expect("rmdir_file", rmdir("uo"), ENOTDIR);
}

static void check_offsets(void)
{
    int a = open("ap", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    int b = open("ap", O_WRONLY | O_APPEND);
    must("open ap (1)", a);
    must("open ap (2)", b);
    must("append a1", write(a, "a1", 2));
    must("append b1", write(b, "b1", 2));
    must("append a2", write(a, "a2", 2));
    must("append b2", write(b, "b2", 2));
    /* O_APPEND ignores the offset for writes: after lseek(0) the write still appends. */
    must("lseek a", lseek(a, 0, SEEK_SET));
    must("append a3", write(a, "a3", 2));
    close(a);
    close(b);
    char buf[64];
    long n = read_file("ap", buf, sizeof buf);
    printf("append_interleaved: %s\n", n >= 0 ? buf : errno_name(errno));
    if (n < 0 || strcmp(buf, "a1b1a2b2a3") != 0)
        failures++;

    int fd = open("dp", O_RDWR | O_CREAT | O_TRUNC, 0644);
    must("open dp", fd);
    int fd2 = dup(fd);
    must("dup", fd2);
    must("write via fd", write(fd, "abc", 3));
    off_t off2 = lseek(fd2, 0, SEEK_CUR);
    must("write via dup", write(fd2, "def", 3));
    off_t off1 = lseek(fd, 0, SEEK_CUR);
    printf("dup_shares_offset: %s\n", off2 == 3 && off1 == 6 ? "yes" : "no");
    if (!(off2 == 3 && off1 == 6))
        failures++;
    close(fd2);
    close(fd);
    result("dup_content", file_is("dp", "abcdef"), "content differs");
}

static void check_sizes(void)
{
    static unsigned char buf[20480];
    struct stat st;

    int fd = open("tr", O_RDWR | O_CREAT | O_TRUNC, 0644);
    must("open tr", fd);
    must("write tr", write(fd, "xyz", 3));
    long rc = ftruncate(fd, 10000);
    must("fstat tr", fstat(fd, &st));
    memset(buf, 0xff, sizeof buf);
    ssize_t r = pread(fd, buf, sizeof buf, 0);
    result("ftruncate_extend",
           rc == 0 && st.st_size == 10000 && r == 10000 && memcmp(buf, "xyz", 3) == 0 &&
               all_zero(buf + 3, 9997),
           "ftruncate %s, size %lld, read %zd", err_or_ok(rc), (long long)st.st_size, r);

    rc = ftruncate(fd, 2);
    must("fstat tr", fstat(fd, &st));
    memset(buf, 0xff, sizeof buf);
    r = pread(fd, buf, sizeof buf, 0);
    result("ftruncate_shrink", rc == 0 && st.st_size == 2 && r == 2 && memcmp(buf, "xy", 2) == 0,
           "ftruncate %s, size %lld, read %zd", err_or_ok(rc), (long long)st.st_size, r);
    /* Growing again must not bring back the discarded byte. */
    rc = ftruncate(fd, 5);
    memset(buf, 0xff, sizeof buf);
    r = pread(fd, buf, sizeof buf, 0);
    result("ftruncate_regrow_zeros", rc == 0 && r == 5 && memcmp(buf, "xy\0\0\0", 5) == 0,
           "ftruncate %s, read %zd", err_or_ok(rc), r);
    expect("ftruncate_negative", ftruncate(fd, -1), EINVAL);
    close(fd);
    expect("truncate_by_path", truncate("tr", 1), 0);
    result("truncate_by_path_size", stat("tr", &st) == 0 && st.st_size == 1, "size %lld",
           (long long)st.st_size);

    fd = open("hole", O_RDWR | O_CREAT | O_TRUNC, 0644);
    must("open hole", fd);
    off_t pos = lseek(fd, 20000, SEEK_SET);
    ssize_t w = write(fd, "end", 3);
    must("fstat hole", fstat(fd, &st));
    memset(buf, 0xff, sizeof buf);
    r = pread(fd, buf, sizeof buf, 0);
    result("write_past_eof", pos == 20000 && w == 3 && st.st_size == 20003 && r == 20003,
           "lseek %lld, write %zd, size %lld, read %zd", (long long)pos, w,
           (long long)st.st_size, r);
    printf("hole_reads_zero: %s\n", all_zero(buf, 20000) ? "yes" : "no");
    if (!all_zero(buf, 20000))
        failures++;
    result("hole_tail", memcmp(buf + 20000, "end", 3) == 0, "tail differs");
    printf("lseek_end: %lld\n", (long long)lseek(fd, 0, SEEK_END));
    close(fd);

    /* A larger write that spans many blocks/clusters, read back in odd-sized pieces. */
    fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
    must("open big", fd);
    static unsigned char big[300000], back[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + i / 4096);
    ssize_t total = 0;
    while (total < (ssize_t)sizeof big) {
        size_t left = sizeof big - (size_t)total;
        ssize_t n = write(fd, big + total, left > 10007 ? 10007 : left);
        if (n <= 0)
            break;
        total += n;
    }
    size_t got = 0;
    while (got < sizeof back) {
        size_t left = sizeof back - got;
        ssize_t n = pread(fd, back + got, left > 3001 ? 3001 : left, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    result("large_write_readback",
           total == (ssize_t)sizeof big && got == sizeof back && memcmp(big, back, sizeof big) == 0,
           "wrote %zd, read %zu", total, got);
}

static void check_deep_tree(void)
{
    enum { DEPTH = 40 };
    char base[PATH_MAX], cwd[PATH_MAX];
    must("getcwd", getcwd(base, sizeof base) ? 0 : -1);
    int ok = 1;
    char detail[128] = "";
    int made = 0;
    for (; made < DEPTH; made++) {
        if (mkdir("d", 0755) < 0 || chdir("d") < 0) {
            snprintf(detail, sizeof detail, "level %d: %s", made, errno_name(errno));
            ok = 0;
            break;
        }
    }
    if (ok) {
        write_file("bottom", "deep");
        if (!getcwd(cwd, sizeof cwd) || strlen(cwd) != strlen(base) + 2 * DEPTH) {
            snprintf(detail, sizeof detail, "getcwd length wrong");
            ok = 0;
        }
    }
    /* The whole relative path from the top works too. */
    if (ok) {
        must("chdir base", chdir(base));
        char path[3 * DEPTH + 16] = "";
        for (int i = 0; i < DEPTH; i++)
            strcat(path, "d/");
        strcat(path, "bottom");
        if (!file_is(path, "deep")) {
            snprintf(detail, sizeof detail, "open by long path: %s", errno_name(errno));
            ok = 0;
        }
        char *down = path;
        path[2 * DEPTH - 1] = 0; /* "d/d/.../d" */
        must("chdir bottom", chdir(down));
    }
    /* Walk back with ".." removing every level. */
    if (made == DEPTH)
        unlink("bottom");
    for (int level = made; level > 0; level--) {
        if (chdir("..") < 0 || rmdir("d") < 0) {
            if (ok)
                snprintf(detail, sizeof detail, "back at level %d: %s", level, errno_name(errno));
            ok = 0;
            break;
        }
    }
    if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, base) != 0) {
        if (ok)
            snprintf(detail, sizeof detail, "did not return to the top");
        ok = 0;
        must("chdir base", chdir(base));
    }
    result("deep_tree_40", ok && !exists("d"), "%s", detail);
}

static void check_names(void)
{
    char name[300];
    memset(name, 'n', 255);
    name[255] = 0;
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
    expect("name_255", fd, 0);
    if (fd >= 0) {
        close(fd);
        printf("name_255_listed: %s\n", listed(".", name) == 1 ? "yes" : "no");
        if (listed(".", name) != 1)
            failures++;
        must("unlink name_255", unlink(name));
    }
    memset(name, 'n', 256);
    name[256] = 0;
    expect("name_256", open(name, O_WRONLY | O_CREAT, 0644), ENAMETOOLONG);
    expect("mkdir_name_256", mkdir(name, 0755), ENAMETOOLONG);
    expect("access_name_256", access(name, F_OK), ENAMETOOLONG);

    write_file("plain", "plain");
    expect("o_excl_existing", open("plain", O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
    expect("o_directory_on_file", open("plain", O_RDONLY | O_DIRECTORY), ENOTDIR);
    expect("trailing_slash_on_file", open("plain/", O_RDONLY), ENOTDIR);
    expect("path_through_file", open("plain/x", O_RDONLY), ENOTDIR);
    expect("open_missing", open("missing", O_RDONLY), ENOENT);
    expect("open_dir_for_write", open(".", O_WRONLY), EISDIR);
    fd = open("plain", O_RDONLY | O_NOFOLLOW);
    expect("o_nofollow_regular", fd, 0);
    if (fd >= 0)
        close(fd);

    long rc = symlink("plain", "lnk");
    expect2("symlink", rc, 0, EPERM);
    if (rc == 0) {
        expect("o_nofollow_symlink", open("lnk", O_RDONLY | O_NOFOLLOW), ELOOP);
        char target[64] = {0};
        ssize_t n = readlink("lnk", target, sizeof target - 1);
        result("readlink", n == 5 && strcmp(target, "plain") == 0, "readlink %zd", n);
        result("symlink_follow", file_is("lnk", "plain"), "content through link differs");
    } else {
        printf("o_nofollow_symlink: n/a\nreadlink: n/a\nsymlink_follow: n/a\n");
    }

    rc = link("plain", "hard");
    expect2("link", rc, 0, EPERM);
    struct stat st;
    if (rc == 0) {
        must("stat hard", stat("hard", &st));
        printf("link_nlink: %lu\n", (unsigned long)st.st_nlink);
        if (st.st_nlink != 2)
            failures++;
        result("link_same_content", file_is("hard", "plain"), "content differs");
    } else {
        printf("link_nlink: n/a\nlink_same_content: n/a\n");
    }

    expect("mkdir_existing", mkdir("rdir3", 0755), EEXIST);
    expect("mkdir_over_file", mkdir("plain", 0755), EEXIST);
    expect("rmdir_nonempty", rmdir("rdir3"), ENOTEMPTY);
    expect("rmdir_missing", rmdir("nodir"), ENOENT);
    expect("mkdir_missing_parent", mkdir("nodir/sub", 0755), ENOENT);

    /* Case: FAT folds case, other file systems do not; case is preserved in listings. */
    write_file("Foo", "case");
    printf("case_insensitive: %s\n", exists("foo") ? "yes" : "no");
    printf("case_preserved: %s\n", listed(".", "Foo") == 1 ? "yes" : "no");
    if (listed(".", "Foo") != 1)
        failures++;
    must("unlink Foo", unlink("Foo"));
}

static void check_listing(void)
{
    must("mkdir ls", mkdir("ls", 0755));
    write_file("ls/b.txt", "b");
    write_file("ls/a", "a");
    write_file("ls/C", "C");
    write_file("ls/.hidden", "h");
    write_file("ls/z_last", "z");
    must("mkdir ls/dir1", mkdir("ls/dir1", 0755));
    DIR *d = opendir("ls");
    must("opendir ls", d ? 0 : -1);
    char *names[32];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count < 32) {
        char type = '?';
        switch (e->d_type) {
        case DT_DIR: type = 'd'; break;
        case DT_REG: type = 'f'; break;
        case DT_LNK: type = 'l'; break;
        case DT_UNKNOWN: type = 'u'; break;
        }
        names[count] = malloc(strlen(e->d_name) + 3);
        sprintf(names[count], "%s %c", e->d_name, type);
        count++;
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof names[0], compare_names);
    printf("readdir_sorted: %d entries\n", count);
    for (int i = 0; i < count; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
    if (count != 8)
        failures++;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static void check_getdents_stability(void)
{
    enum { FILES = 50 };
    char path[64];
    must("mkdir gd", mkdir("gd", 0755));
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "gd/f%02d", i);
        write_file(path, "x");
    }
    int fd = open("gd", O_RDONLY | O_DIRECTORY);
    must("open gd", fd);

    /* A buffer too small for any entry. */
    char tiny[8];
    expect("getdents_tiny_buffer", syscall(SYS_getdents64, fd, tiny, sizeof tiny), EINVAL);

    /* Small buffers, so that the listing takes many calls with deletions in between. */
    int seen[FILES] = {0}, strange = 0, next_delete = 1, calls = 0;
    union {
        struct linux_dirent64 align;
        char bytes[128];
    } buf;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf.bytes, sizeof buf.bytes);
        if (n < 0) {
            printf("getdents_during_delete: %s\n", errno_name(errno));
            failures++;
            break;
        }
        if (n == 0)
            break;
        calls++;
        for (long pos = 0; pos < n;) {
            struct linux_dirent64 *ent = (struct linux_dirent64 *)(buf.bytes + pos);
            if (ent->d_reclen == 0)
                break;
            pos += ent->d_reclen;
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
                continue;
            int idx;
            char tail;
            if (sscanf(ent->d_name, "f%2d%c", &idx, &tail) == 1 && idx >= 0 && idx < FILES)
                seen[idx]++;
            else
                strange++;
            /* Delete the next odd-numbered file after every entry returned. */
            if (next_delete < FILES) {
                snprintf(path, sizeof path, "gd/f%02d", next_delete);
                must("unlink during getdents", unlink(path));
                next_delete += 2;
            }
        }
    }
    close(fd);
    for (; next_delete < FILES; next_delete += 2) {
        snprintf(path, sizeof path, "gd/f%02d", next_delete);
        must("unlink after getdents", unlink(path));
    }
    int dupes = 0, missing = 0;
    for (int i = 0; i < FILES; i++) {
        if (seen[i] > 1)
            dupes++;
        if (i % 2 == 0 && seen[i] != 1)
            missing++;
    }
    printf("getdents_several_calls: %s\n", calls > 3 ? "yes" : "no");
    printf("getdents_no_duplicates: %s\n", dupes == 0 && strange == 0 ? "yes" : "no");
    printf("getdents_survivors_seen: %s\n", missing == 0 ? "yes" : "no");
    if (calls <= 3 || dupes || strange || missing)
        failures++;

    int left = 0;
    DIR *d = opendir("gd");
    must("opendir gd", d ? 0 : -1);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == 'f')
            left++;
    closedir(d);
    printf("getdents_after_delete_count: %d\n", left);
    if (left != FILES / 2)
        failures++;

    /* rewinddir starts the listing again. */
    d = opendir("gd");
    must("opendir gd", d ? 0 : -1);
    int first = 0, second = 0;
    while ((e = readdir(d)) != NULL)
        first++;
    rewinddir(d);
    while ((e = readdir(d)) != NULL)
        second++;
    closedir(d);
    result("rewinddir", first == second && first == FILES / 2 + 2, "%d then %d entries", first,
           second);
}

static void check_sync_and_meta(void)
{
    int fd = open("plain", O_RDWR);
    must("open plain", fd);
    expect("fsync_file", fsync(fd), 0);
    expect("fdatasync_file", fdatasync(fd), 0);
    close(fd);
    int dfd = open(".", O_RDONLY | O_DIRECTORY);
    must("open .", dfd);
    expect("fsync_dir", fsync(dfd), 0);
    expect("fdatasync_dir", fdatasync(dfd), 0);

    struct statfs sfs;
    long rc = statfs(".", &sfs);
    printf("statfs: %s\n", err_or_ok(rc));
    printf("statfs_bsize_positive: %s\n", rc == 0 && sfs.f_bsize > 0 ? "yes" : "no");
    if (rc < 0 || sfs.f_bsize <= 0)
        failures++;
    rc = fstatfs(dfd, &sfs);
    printf("fstatfs: %s\n", err_or_ok(rc));
    printf("fstatfs_bsize_positive: %s\n", rc == 0 && sfs.f_bsize > 0 ? "yes" : "no");
    if (rc < 0 || sfs.f_bsize <= 0)
        failures++;
    expect("syncfs_dir", syncfs(dfd), 0);
    close(dfd);

    /* Files outside the tree live on Linux's pseudo filesystems, which syncfs accepts. */
    int pfd[2];
    must("pipe", pipe(pfd));
    rc = fstatfs(pfd[0], &sfs);
    printf("fstatfs_pipe: %s\n", rc < 0 ? errno_name(errno)
                                  : sfs.f_type == 0x50495045 ? "PIPEFS_MAGIC" : "other");
    if (rc < 0 || sfs.f_type != 0x50495045)
        failures++;
    expect("syncfs_pipe", syncfs(pfd[1]), 0);
    close(pfd[0]);
    close(pfd[1]);
    int efd = eventfd(0, 0);
    must("eventfd", efd);
    rc = fstatfs(efd, &sfs);
    printf("fstatfs_eventfd: %s\n", rc < 0 ? errno_name(errno)
                                     : sfs.f_type == 0x09041934 ? "ANON_INODE_FS_MAGIC" : "other");
    if (rc < 0 || sfs.f_type != 0x09041934)
        failures++;
    close(efd);

    /* utimensat with an explicit time (even seconds: FAT keeps 2 s granularity). */
    struct timespec times[2] = {{1600000000, 0}, {1600000000, 0}};
    rc = utimensat(AT_FDCWD, "plain", times, 0);
    struct stat st;
    must("stat plain", stat("plain", &st));
    long long diff = (long long)st.st_mtime - 1600000000LL;
    result("utimensat_mtime", rc == 0 && diff >= -2 && diff <= 2, "utimensat %s, off by %lld s",
           err_or_ok(rc), diff);
    struct timespec now_times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    rc = utimensat(AT_FDCWD, "plain", now_times, 0);
    must("stat plain", stat("plain", &st));
    diff = (long long)st.st_mtime - (long long)time(NULL);
    result("utimensat_now", rc == 0 && diff >= -3 && diff <= 3, "utimensat %s, off by %lld s",
           err_or_ok(rc), diff);

    /* A write moves mtime forward from the past. */
    must("utimensat past", utimensat(AT_FDCWD, "plain", times, 0));
    fd = open("plain", O_WRONLY | O_APPEND);
    must("open plain", fd);
    must("write plain", write(fd, "+", 1));
    close(fd);
    must("stat plain", stat("plain", &st));
    printf("write_updates_mtime: %s\n", st.st_mtime > 1600000010 ? "yes" : "no");
    if (st.st_mtime <= 1600000010)
        failures++;

    /* Permission bits: recorded everywhere (in memory only on FAT). */
    must("chmod 0644", chmod("plain", 0644));
    rc = chmod("plain", 0600);
    must("stat plain", stat("plain", &st));
    printf("chmod: %s\n", err_or_ok(rc));
    if (rc < 0)
        failures++;
    printf("chmod_recorded: %s\n", (st.st_mode & 07777) == 0600 ? "yes" : "no");
    if ((st.st_mode & 07777) != 0600)
        failures++;
    printf("stat_is_regular: %s\n", S_ISREG(st.st_mode) ? "yes" : "no");
    must("stat ls", stat("ls", &st));
    printf("stat_is_dir: %s\n", S_ISDIR(st.st_mode) ? "yes" : "no");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: file_semantics DIR\n");
        return 2;
    }
    umask(022);
    setvbuf(stdout, NULL, _IOLBF, 0);
    must("chdir DIR", chdir(argv[1]));
    rm_rf(WORK_NAME);
    must("mkdir work", mkdir(WORK_NAME, 0755));
    must("chdir work", chdir(WORK_NAME));

    check_rename();
    check_unlink_open();
    check_offsets();
    check_sizes();
    check_deep_tree();
    check_names();
    check_listing();
    check_getdents_stability();
    check_sync_and_meta();

    must("chdir ..", chdir(".."));
    rm_rf(WORK_NAME);
    printf("cleanup: %s\n", exists(WORK_NAME) ? "left files" : "ok");
    if (exists(WORK_NAME))
        failures++;
    printf("failures: %d\n", failures);
    return failures ? 1 : 0;
}
