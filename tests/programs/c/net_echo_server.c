/*
 * net_echo_server: a TCP (and optionally UDP) echo server for the host-driven network
 * tests: one thread, one epoll instance, non-blocking sockets.
 *
 *   net_echo_server PORT [--bind ADDR] [--connections N] [--udp]
 *
 * Listens on ADDR:PORT (ADDR defaults to 0.0.0.0; PORT 0 lets the kernel choose) and
 * prints one line, "listening on port P", once every socket is ready. With --udp it also
 * echoes datagrams on the same port number (bound before the TCP listener, so a client
 * that saw the TCP side ready may use UDP at once). It exits 0 after N TCP connections
 * have been served to the end (--connections N), or when a datagram "quit" arrives
 * (answered with "bye"), printing "served C connections, B bytes, D datagrams". Errors
 * other than a peer going away are counted and make the exit status 1.
 */
#define _GNU_SOURCE
#include "net_common.h"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#define BUF_SIZE 16384
#define MAX_EVENTS 256

struct conn {
    int fd;
    size_t len; /* bytes in buf not yet echoed */
    unsigned char buf[BUF_SIZE];
};

/* epoll data for the listening sockets; connections use their struct conn. */
static int tcp_tag, udp_tag;

static long served, errors;
static unsigned long long bytes, datagrams;

static void usage(void)
{
    fprintf(stderr, "usage: net_echo_server PORT [--bind ADDR] [--connections N] [--udp]\n");
    exit(2);
}

static void finish(struct conn *c, int ep)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
    served++;
}

/* Echoes what it can; returns 0 when the connection is over. */
static int serve(struct conn *c, int ep)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        if (c->len > 0) {
            long w = send(c->fd, c->buf, c->len, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN)
                    break;
                if (errno != EPIPE && errno != ECONNRESET) {
                    fprintf(stderr, "echo server: send: %s\n", net_errno_name(errno));
                    errors++;
                }
                return 0;
            }
            bytes += (unsigned long long)w;
            memmove(c->buf, c->buf + w, c->len - (size_t)w);
            c->len -= (size_t)w;
            if (c->len > 0)
                break;
        }
        long r = read(c->fd, c->buf, BUF_SIZE);
        if (r == 0)
            return 0;
        if (r < 0) {
            if (errno == EAGAIN)
                break;
            if (errno != ECONNRESET) {
                fprintf(stderr, "echo server: read: %s\n", net_errno_name(errno));
                errors++;
            }
            return 0;
        }
        c->len = (size_t)r;
    }
    /* Wait for room to write while holding data, else for more to read. */
    struct epoll_event ev = {.events = c->len > 0 ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 1;
}

/* Echoes every queued datagram; returns 0 once "quit" arrived. */
static int serve_udp(int fd)
{
    static unsigned char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        long n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n < 0) {
            if (errno != EAGAIN) {
                fprintf(stderr, "echo server: recvfrom: %s\n", net_errno_name(errno));
                errors++;
            }
            return 1;
        }
        if (n == 4 && memcmp(buf, "quit", 4) == 0) {
            sendto(fd, "bye", 3, 0, (struct sockaddr *)&from, len);
            return 0;
        }
        if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len) < 0) {
            fprintf(stderr, "echo server: sendto: %s\n", net_errno_name(errno));
            errors++;
        }
        datagrams++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535)
        usage();
    const char *bind_addr = "0.0.0.0";
    long limit = 0;
    int with_udp = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--bind") && i + 1 < argc)
            bind_addr = argv[++i];
        else if (!strcmp(argv[i], "--connections") && i + 1 < argc)
            limit = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--udp"))
            with_udp = 1;
        else
            usage();
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
    addr.sin_port = htons(local_port(listener));
    int udp = -1;
    if (with_udp) {
        udp = (int)need("udp socket", socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        need("udp bind", bind(udp, (struct sockaddr *)&addr, sizeof addr));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &udp_tag};
        need("epoll_ctl udp", epoll_ctl(ep, EPOLL_CTL_ADD, udp, &ev));
    }
    need("listen", listen(listener, 4096));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tcp_tag};
    need("epoll_ctl listener", epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev));
    printf("listening on port %u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);

    int running = 1;
    while (running && (limit == 0 || served < limit)) {
        struct epoll_event events[MAX_EVENTS];
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            need("epoll_wait", -1);
        }
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &tcp_tag) {
                for (;;) {
                    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        if (errno != EAGAIN && errno != ECONNABORTED) {
                            fprintf(stderr, "echo server: accept4: %s\n", net_errno_name(errno));
                            errors++;
                        }
                        break;
                    }
                    struct conn *c = malloc(sizeof *c);
                    if (!c) {
                        fprintf(stderr, "echo server: out of memory\n");
                        errors++;
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->len = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    need("epoll_ctl conn", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev));
                }
            } else if (tag == &udp_tag) {
                running = serve_udp(udp);
            } else if (!serve(tag, ep)) {
                finish(tag, ep);
            }
        }
    }
    printf("served %ld connections, %llu bytes, %llu datagrams\n", served, bytes, datagrams);
    if (errors)
        printf("errors: %ld\n", errors);
    return errors ? 1 : 0;
}
