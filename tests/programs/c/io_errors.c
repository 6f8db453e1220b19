/*
 * io_errors FILE NEWFILE: what a program sees when the disk under a volume fails.
 *
 * Meant for a guest whose volume sits behind QEMU's blkdebug driver, set to fail reads
 * of a sector inside FILE and every write (tests/tests/volumes.rs builds that):
 *   - FILE (made by the host with the byte at offset i equal to i % 251) is read
 *     sequentially in 64 KiB pieces: the bytes before the failure are right, the
 *     failing read returns EIO, and so does reading there again;
 *   - NEWFILE is created and written (the data waits in the guest's cache), then
 *     fsync returns EIO because the disk refuses the write.
 * Lines are "name: value"; status 0 when every call behaved as described, 1 otherwise.
 * On a healthy disk (natively, say) the reads and the fsync succeed and it says so.
 */
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

#define PIECE (64 * 1024)

static unsigned char buf[PIECE];

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: io_errors FILE NEWFILE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    int failures = 0;

    int fd = open(argv[1], O_RDONLY);
    must("open FILE", fd);
    long long offset = 0;
    int intact = 1;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != (unsigned char)((offset + i) % 251))
                intact = 0;
        offset += n;
    }
    int read_errno = n < 0 ? errno : 0;
    printf("read: %s\n", errno_name(read_errno));
    printf("bytes before the error intact: %s\n", intact ? "yes" : "no");
    if (read_errno != EIO || !intact)
        failures++;
    n = pread(fd, buf, sizeof buf, offset);
    printf("read there again: %s\n", errno_name(n < 0 ? errno : 0));
    if (n >= 0 || errno != EIO)
        failures++;
    close(fd);

    fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    must("create NEWFILE", fd);
    memset(buf, 'w', sizeof buf);
    n = write(fd, buf, sizeof buf);
    printf("write to the cache: %s\n", n == (ssize_t)sizeof buf ? "ok" : errno_name(errno));
    int rc = fsync(fd);
    int fsync_errno = rc < 0 ? errno : 0;
    printf("fsync: %s\n", errno_name(fsync_errno));
    if (fsync_errno != EIO)
        failures++;
    close(fd);
    printf("io_errors: %s\n", failures ? "unexpected results" : "done");
    return failures ? 1 : 0;
}
