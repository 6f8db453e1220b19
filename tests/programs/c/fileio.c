/*
 * fileio: regular-file system calls in a fresh directory under /tmp.
 *
 * open/read/write/pread/pwrite/lseek/ftruncate/fstat/rename/unlink/dup/dup2/fcntl, plus
 * the errnos Linux gives for the common mistakes. The directory comes from mkdtemp so
 * parallel native runs do not collide; its name is never printed.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char workdir[] = "/tmp/skiff-fileio-XXXXXX";

static void path_in_workdir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", workdir, name);
}

static void print_read(const char *label, int fd, size_t count)
{
    char buf[128] = {0};
    ssize_t n = read(fd, buf, count < sizeof buf ? count : sizeof buf - 1);
    if (n < 0)
        printf("%s: %s\n", label, errno_name(errno));
    else
        printf("%s: %zd [%.*s]\n", label, n, (int)n, buf);
}

int main(void)
{
    /* A fixed umask makes the printed permission bits independent of the caller's. */
    umask(022);
    if (mkdtemp(workdir) == NULL) {
        printf("FATAL mkdtemp: %s\n", errno_name(errno));
        return 99;
    }
    char data_path[256], moved_path[256], missing_path[256];
    path_in_workdir(data_path, sizeof data_path, "data.txt");
    path_in_workdir(moved_path, sizeof moved_path, "moved.txt");
    path_in_workdir(missing_path, sizeof missing_path, "missing.txt");

    outcome("open missing without O_CREAT", open(missing_path, O_RDONLY));
    int fd = (int)outcome("open O_CREAT|O_EXCL", open(data_path, O_RDWR | O_CREAT | O_EXCL, 0644));
    must("create data file", fd);
    outcome("open O_CREAT|O_EXCL again", open(data_path, O_RDWR | O_CREAT | O_EXCL, 0644));
    outcome("open directory O_WRONLY", open(workdir, O_WRONLY));

    printf("write: %zd\n", write(fd, "hello, skiff world\n", 19));
    printf("lseek cur: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    printf("lseek set 7: %ld\n", (long)lseek(fd, 7, SEEK_SET));
    print_read("read 5 at 7", fd, 5);
    printf("lseek cur after read: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    printf("lseek end -6: %ld\n", (long)lseek(fd, -6, SEEK_END));
    print_read("read rest", fd, 100);
    print_read("read at eof", fd, 10);
    outcome("lseek negative", lseek(fd, -100, SEEK_SET));
    outcome("lseek bad whence", lseek(fd, 0, 12345));

    char pbuf[16] = {0};
    ssize_t pn = pread(fd, pbuf, 5, 0);
    printf("pread 5 at 0: %zd [%.*s]\n", pn, (int)(pn > 0 ? pn : 0), pbuf);
    printf("offset unchanged by pread: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    printf("pwrite 5 at 0: %zd\n", pwrite(fd, "HELLO", 5, 0));
    printf("pwrite past end at 30: %zd\n", pwrite(fd, "tail", 4, 30));
    outcome("pread negative offset", pread(fd, pbuf, 1, -1));

    struct stat st;
    must("fstat", fstat(fd, &st));
    printf("fstat size: %ld\n", (long)st.st_size);
    check("fstat is regular file", S_ISREG(st.st_mode));
    printf("fstat permissions: %o\n", (unsigned)(st.st_mode & 0777));
    check("fstat nlink is 1", st.st_nlink == 1);

    /* The hole between offset 19 and 30 reads back as zeros. */
    unsigned char whole[64];
    ssize_t wn = pread(fd, whole, sizeof whole, 0);
    int hole_zero = wn == 34;
    for (int i = 19; i < 30 && hole_zero; i++)
        hole_zero = whole[i] == 0;
    check("hole reads back as zeros", hole_zero);
    printf("content head: [%.*s]\n", 19, (const char *)whole);

    outcome("ftruncate to 5", ftruncate(fd, 5));
    must("fstat", fstat(fd, &st));
    printf("size after shrink: %ld\n", (long)st.st_size);
    outcome("ftruncate to 4096", ftruncate(fd, 4096));
    must("fstat", fstat(fd, &st));
    printf("size after grow: %ld\n", (long)st.st_size);
    wn = pread(fd, whole, sizeof whole, 0);
    int grown_zero = wn == (ssize_t)sizeof whole;
    for (int i = 5; i < (int)sizeof whole && grown_zero; i++)
        grown_zero = whole[i] == 0;
    check("grown region reads as zeros", grown_zero);
    outcome("ftruncate negative", ftruncate(fd, -1));

    int dup_fd = (int)outcome("dup", dup(fd));
    printf("dup shares offset: ");
    lseek(fd, 2, SEEK_SET);
    printf("%ld\n", (long)lseek(dup_fd, 0, SEEK_CUR));
    outcome("dup2 to 50", dup2(fd, 50));
    print_read("read via fd 50", 50, 3);
    outcome("close 50", close(50));
    outcome("close 50 again", close(50));
    outcome("dup2 from bad fd", dup2(1000, 51));
    outcome("read bad fd", read(1000, pbuf, 1));

    printf("fcntl F_GETFD: %d\n", fcntl(fd, F_GETFD));
    outcome("fcntl F_SETFD FD_CLOEXEC", fcntl(fd, F_SETFD, FD_CLOEXEC));
    printf("fcntl F_GETFD after: %d\n", fcntl(fd, F_GETFD));
    int accmode = fcntl(fd, F_GETFL) & O_ACCMODE;
    check("fcntl F_GETFL is O_RDWR", accmode == O_RDWR);
    int high_fd = fcntl(fd, F_DUPFD, 100);
    printf("fcntl F_DUPFD 100: %d\n", high_fd);
    outcome("fcntl bad fd", fcntl(1000, F_GETFD));
    close(high_fd);
    close(dup_fd);
    close(fd);

    int append_fd = (int)outcome("open O_APPEND", open(data_path, O_WRONLY | O_APPEND));
    must("open append", append_fd);
    lseek(append_fd, 0, SEEK_SET);
    printf("append write: %zd\n", write(append_fd, "!!", 2));
    must("fstat", fstat(append_fd, &st));
    printf("size after append: %ld\n", (long)st.st_size);
    outcome("read on O_WRONLY", read(append_fd, pbuf, 1));
    close(append_fd);

    outcome("rename", rename(data_path, moved_path));
    outcome("open old name", open(data_path, O_RDONLY));
    fd = (int)outcome("open new name", open(moved_path, O_RDONLY));
    print_read("read new name", fd, 5);
    outcome("write on O_RDONLY", write(fd, "x", 1));
    close(fd);
    outcome("rename missing", rename(missing_path, data_path));

    int trunc_fd = (int)outcome("open O_TRUNC", open(moved_path, O_RDWR | O_TRUNC));
    must("fstat", fstat(trunc_fd, &st));
    printf("size after O_TRUNC: %ld\n", (long)st.st_size);
    close(trunc_fd);

    outcome("unlink", unlink(moved_path));
    outcome("unlink again", unlink(moved_path));
    outcome("stat after unlink", stat(moved_path, &st));
    outcome("unlink directory", unlink(workdir));
    outcome("rmdir workdir", rmdir(workdir));
    return 0;
}
