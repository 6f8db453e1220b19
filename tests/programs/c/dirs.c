/*
 * dirs: directory system calls in a fresh directory under /tmp.
 *
 * mkdir/rmdir, listing with readdir (getdents64 underneath) sorted by name, chdir and
 * getcwd, symlink/readlink/lstat, and the errnos (EEXIST, ENOENT, ENOTEMPTY, ENOTDIR)
 * printed by name. Paths are printed relative to the mkdtemp directory.
 */
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static char workdir[] = "/tmp/skiff-dirs-XXXXXX";

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints the sorted entries of `path` (including "." and ".."), with a type letter. */
static void list_dir(const char *label, const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        printf("%s: opendir %s\n", label, errno_name(errno));
        return;
    }
    char *names[64];
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && count < 64) {
        char type = '?';
        switch (entry->d_type) {
        case DT_DIR: type = 'd'; break;
        case DT_REG: type = 'f'; break;
        case DT_LNK: type = 'l'; break;
        case DT_UNKNOWN: type = 'u'; break;
        }
        names[count] = malloc(strlen(entry->d_name) + 3);
        sprintf(names[count], "%s %c", entry->d_name, type);
        count++;
    }
    closedir(dir);
    qsort(names, (size_t)count, sizeof names[0], compare_names);
    printf("%s: %d entries\n", label, count);
    for (int i = 0; i < count; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
}

static void create_file(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    must("create file", fd);
    must("write file", write(fd, content, strlen(content)));
    close(fd);
}

/* Prints getcwd() relative to the work directory. */
static void print_cwd(const char *label)
{
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        printf("%s: %s\n", label, errno_name(errno));
        return;
    }
    size_t base = strlen(workdir);
    if (strncmp(cwd, workdir, base) == 0)
        printf("%s: <work>%s\n", label, cwd + base);
    else
        printf("%s: %s\n", label, cwd);
}

int main(void)
{
    umask(022);
    if (mkdtemp(workdir) == NULL) {
        printf("FATAL mkdtemp: %s\n", errno_name(errno));
        return 99;
    }
    must("chdir work", chdir(workdir));
    print_cwd("cwd");

    outcome("mkdir sub", mkdir("sub", 0755));
    outcome("mkdir sub again", mkdir("sub", 0755));
    outcome("mkdir nested missing parent", mkdir("nope/deeper", 0755));
    outcome("mkdir sub/inner", mkdir("sub/inner", 0755));
    create_file("b.txt", "bee\n");
    create_file("a.txt", "ay\n");
    create_file("sub/c.txt", "sea\n");
    outcome("mkdir over file", mkdir("a.txt", 0755));
    outcome("mkdir under file", mkdir("a.txt/x", 0755));

    struct stat st;
    outcome("stat sub", stat("sub", &st));
    check("sub is a directory", S_ISDIR(st.st_mode));
    printf("sub permissions: %o\n", (unsigned)(st.st_mode & 0777));

    outcome("symlink", symlink("a.txt", "link-to-a"));
    outcome("symlink dangling", symlink("does-not-exist", "dangling"));
    outcome("symlink existing name", symlink("a.txt", "b.txt"));
    char target[64] = {0};
    ssize_t tn = readlink("link-to-a", target, sizeof target - 1);
    if (tn < 0)
        printf("readlink: %s\n", errno_name(errno));
    else
        printf("readlink: %zd [%.*s]\n", tn, (int)tn, target);
    outcome("readlink on regular file", readlink("a.txt", target, sizeof target));
    outcome("lstat link", lstat("link-to-a", &st));
    check("lstat sees a symlink", S_ISLNK(st.st_mode));
    outcome("stat through link", stat("link-to-a", &st));
    check("stat follows to a regular file", S_ISREG(st.st_mode));
    printf("size through link: %ld\n", (long)st.st_size);
    outcome("stat dangling link", stat("dangling", &st));
    int fd = open("link-to-a", O_RDONLY);
    char buf[16] = {0};
    ssize_t rn = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    printf("read through link: [%.*s]\n", (int)(rn > 0 ? rn - 1 : 0), buf);
    if (fd >= 0)
        close(fd);

    list_dir("listing of work", ".");
    list_dir("listing of sub", "sub");
    list_dir("listing of file", "a.txt");
    list_dir("listing of missing", "missing");

    outcome("chdir sub/inner", chdir("sub/inner"));
    print_cwd("cwd after chdir");
    outcome("chdir ..", chdir(".."));
    print_cwd("cwd after ..");
    outcome("chdir missing", chdir("missing"));
    outcome("chdir to file", chdir("c.txt"));
    outcome("chdir work", chdir(workdir));

    outcome("rmdir non-empty", rmdir("sub"));
    outcome("rmdir missing", rmdir("missing"));
    outcome("rmdir file", rmdir("a.txt"));
    outcome("rmdir sub/inner", rmdir("sub/inner"));
    outcome("unlink sub/c.txt", unlink("sub/c.txt"));
    outcome("rmdir sub", rmdir("sub"));
    outcome("stat removed sub", stat("sub", &st));
    outcome("unlink link", unlink("link-to-a"));
    outcome("stat a.txt survives link removal", stat("a.txt", &st));
    outcome("unlink dangling", unlink("dangling"));
    outcome("unlink a.txt", unlink("a.txt"));
    outcome("unlink b.txt", unlink("b.txt"));
    list_dir("listing after cleanup", ".");

    outcome("chdir /", chdir("/"));
    print_cwd("cwd at root");
    outcome("rmdir work", rmdir(workdir));
    return 0;
}
