/*
 * net_http_server: a small static-file HTTP/1.1 server for the host-driven network
 * tests (busybox httpd forks per connection, which Skiff cannot do). One thread, one
 * epoll instance, non-blocking sockets; every response closes its connection.
 *
 *   net_http_server PORT DIR [--bind ADDR] [--requests N]
 *
 * Serves the regular files under DIR for GET and HEAD: 200 with Content-Length, 404 for
 * a missing file, 403 for anything that is not a regular file, 400 for a malformed
 * request or a path outside [A-Za-z0-9._/-] or with a ".." segment, 405 for other
 * methods. Prints "listening on port P" once ready (PORT 0 lets the kernel choose) and
 * "served N requests" when it exits after N requests (--requests N). Exit status 1 if
 * anything failed on the server's side.
 */
#define _GNU_SOURCE
#include "net_common.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUEST_MAX 8192
#define CHUNK 65536
#define MAX_EVENTS 64

struct conn {
    int fd;
    int file;              /* open file being sent, or -1 */
    size_t request_len;
    char request[REQUEST_MAX + 1];
    char *out;             /* response bytes not yet sent */
    size_t out_len, out_off;
    unsigned long long body_left; /* file bytes still to send after out */
    int responding;
};

static const char *root;
static long requests, errors;
static int listener_tag;

static void usage(void)
{
    fprintf(stderr, "usage: net_http_server PORT DIR [--bind ADDR] [--requests N]\n");
    exit(2);
}

static void close_conn(struct conn *c, int ep)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->file >= 0)
        close(c->file);
    free(c->out);
    free(c);
}

/* Queues a response head (and, for errors, a short body). */
static void respond(struct conn *c, int status, const char *reason, unsigned long long length,
                    const char *extra_headers, const char *body)
{
    c->out = malloc(CHUNK);
    int n = snprintf(c->out, CHUNK,
                     "HTTP/1.1 %d %s\r\nContent-Length: %llu\r\nContent-Type: %s\r\n%sConnection: close\r\n\r\n%s",
                     status, reason, length, body ? "text/plain" : "application/octet-stream",
                     extra_headers ? extra_headers : "", body ? body : "");
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->responding = 1;
}

static void respond_error(struct conn *c, int status, const char *reason, const char *extra, int head)
{
    static char body[128];
    snprintf(body, sizeof body, "%d %s\n", status, reason);
    respond(c, status, reason, strlen(body), extra, head ? "" : body);
}

static int path_is_safe(const char *path)
{
    if (path[0] != '/')
        return 0;
    for (const char *p = path; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                 ch == '_' || ch == '-' || ch == '/';
        if (!ok)
            return 0;
    }
    /* No ".." segment anywhere. */
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
        int starts = p[-1] == '/';
        int ends = p[2] == '/' || p[2] == 0;
        if (starts && ends)
            return 0;
    }
    return 1;
}

/* The request head is complete: decide the response. */
static void handle_request(struct conn *c)
{
    char method[16], path[1024], version[16];
    if (sscanf(c->request, "%15s %1023s %15s", method, path, version) != 3 || strncmp(version, "HTTP/1.", 7) != 0) {
        respond_error(c, 400, "Bad Request", NULL, 0);
        return;
    }
    int head = !strcmp(method, "HEAD");
    if (!head && strcmp(method, "GET") != 0) {
        respond_error(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", 0);
        return;
    }
    if (!path_is_safe(path)) {
        respond_error(c, 400, "Bad Request", NULL, head);
        return;
    }
    char full[2048];
    snprintf(full, sizeof full, "%s%s", root, path);
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            respond_error(c, 404, "Not Found", NULL, head);
        else
            respond_error(c, 403, "Forbidden", NULL, head);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        respond_error(c, 403, "Forbidden", NULL, head);
        return;
    }
    respond(c, 200, "OK", (unsigned long long)st.st_size, NULL, NULL);
    if (head) {
        close(fd);
        return;
    }
    c->file = fd;
    c->body_left = (unsigned long long)st.st_size;
}

/* Reads the request head; returns 0 when the connection should close at once. */
static int read_request(struct conn *c)
{
    for (;;) {
        if (c->request_len == REQUEST_MAX) {
            respond_error(c, 400, "Bad Request", NULL, 0);
            return 1;
        }
        long r = read(c->fd, c->request + c->request_len, REQUEST_MAX - c->request_len);
        if (r < 0)
            return errno == EAGAIN;
        if (r == 0)
            return 0; /* the client left before finishing its request */
        c->request_len += (size_t)r;
        c->request[c->request_len] = 0;
        if (strstr(c->request, "\r\n\r\n") || strstr(c->request, "\n\n")) {
            handle_request(c);
            return 1;
        }
    }
}

/* Sends queued bytes and file data; returns 0 once the response is done (or failed). */
static int write_response(struct conn *c)
{
    for (;;) {
        if (c->out_off == c->out_len) {
            if (c->body_left == 0)
                return 0;
            long r = read(c->file, c->out, CHUNK);
            if (r <= 0) {
                fprintf(stderr, "http server: reading the file: %s\n", r < 0 ? net_errno_name(errno) : "short file");
                errors++;
                return 0;
            }
            if ((unsigned long long)r > c->body_left)
                r = (long)c->body_left;
            c->body_left -= (unsigned long long)r;
            c->out_len = (size_t)r;
            c->out_off = 0;
        }
        long w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                return 1;
            return 0; /* the client went away; nothing to report */
        }
        c->out_off += (size_t)w;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535)
        usage();
    root = argv[2];
    const char *bind_addr = "0.0.0.0";
    long limit = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--bind") && i + 1 < argc)
            bind_addr = argv[++i];
        else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
            limit = strtol(argv[++i], NULL, 10);
        else
            usage();
    }
    struct stat st;
    if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "http server: %s is not a directory\n", root);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1)
        usage();
    int ep = (int)need("epoll_create1", epoll_create1(EPOLL_CLOEXEC));
    int listener = (int)need("socket", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    need("SO_REUSEADDR", setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    need("bind", bind(listener, (struct sockaddr *)&addr, sizeof addr));
    need("listen", listen(listener, 128));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    need("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev));
    printf("listening on port %u\n", (unsigned)local_port(listener));
    fflush(stdout);

    while (limit == 0 || requests < limit) {
        struct epoll_event events[MAX_EVENTS];
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            need("epoll_wait", -1);
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &listener_tag) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        errors++;
                        continue;
                    }
                    c->fd = fd;
                    c->file = -1;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    need("epoll_ctl conn", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev));
                }
                if (errno != EAGAIN && errno != ECONNABORTED) {
                    fprintf(stderr, "http server: accept4: %s\n", net_errno_name(errno));
                    errors++;
                }
                continue;
            }
            struct conn *c = events[i].data.ptr;
            if (!c->responding) {
                if (!read_request(c)) {
                    close_conn(c, ep);
                    continue;
                }
                if (!c->responding)
                    continue;
                struct epoll_event cev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
            if (!write_response(c)) {
                requests++;
                close_conn(c, ep);
            }
        }
    }
    printf("served %ld requests\n", requests);
    if (errors)
        printf("errors: %ld\n", errors);
    return errors ? 1 : 0;
}
