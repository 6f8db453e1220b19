/*
 * Shared helpers for the network test programs (net_*.c), on top of common.h.
 *
 * The programs talk to themselves over 127.0.0.1 and always bind port 0: several of
 * them (and several build variants) run at the same time on one host, so a fixed port
 * would collide. Port numbers the kernel picks are never printed, only facts about them
 * ("nonzero: yes"), so the output is the same natively and in Skiff.
 *
 * Anything that depends on the peer having acted (data arrived, FIN or RST processed)
 * first waits for it with poll() and a generous timeout: on Linux loopback delivery is
 * nearly synchronous, in a guest it may take a scheduler round.
 */
#ifndef SKIFF_NET_COMMON_H
#define SKIFF_NET_COMMON_H

#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* How long a step waits for the peer before the program says it never happened. */
#define PEER_WAIT_MS 10000

/* errno_name() from common.h plus the errors sockets add. */
static __attribute__((unused)) const char *net_errno_name(int e)
{
    switch (e) {
    case ENOTSOCK: return "ENOTSOCK";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    case EMSGSIZE: return "EMSGSIZE";
    case EPROTOTYPE: return "EPROTOTYPE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNABORTED: return "ECONNABORTED";
    case ECONNRESET: return "ECONNRESET";
    case ENOBUFS: return "ENOBUFS";
    case EISCONN: return "EISCONN";
    case ENOTCONN: return "ENOTCONN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EALREADY: return "EALREADY";
    case EINPROGRESS: return "EINPROGRESS";
    case EDOM: return "EDOM";
    default: return errno_name(e);
    }
}

/* "label: NAME" for a call that returns -1 + errno ("OK" on success); a failed check
 * unless the outcome is `expected` (0 = success). Returns the call's result. */
static __attribute__((unused)) long expect_net(const char *label, long rc, int expected)
{
    int e = rc < 0 ? errno : 0;
    printf("%s: %s\n", label, net_errno_name(e));
    if (e != expected)
        checks_failed++;
    return rc;
}

/* must() with socket error names: setup steps whose failure voids the rest. */
static __attribute__((unused)) long need(const char *label, long rc)
{
    if (rc < 0) {
        printf("FATAL %s: %s\n", label, net_errno_name(errno));
        fflush(stdout);
        exit(99);
    }
    return rc;
}

/* Poll event bits as "IN|OUT|..." in a fixed order, "0" for none. */
static __attribute__((unused)) const char *poll_mask_text(int revents)
{
    static char text[128];
    static const struct {
        int bit;
        const char *name;
    } names[] = {
        {POLLIN, "IN"},     {POLLPRI, "PRI"},     {POLLOUT, "OUT"},   {POLLERR, "ERR"},
        {POLLHUP, "HUP"},   {POLLNVAL, "NVAL"},   {POLLRDHUP, "RDHUP"},
    };
    text[0] = 0;
    int known = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (revents & names[i].bit) {
            if (text[0])
                strcat(text, "|");
            strcat(text, names[i].name);
            known |= names[i].bit;
        }
    }
    if (revents & ~known) {
        char rest[32];
        snprintf(rest, sizeof rest, "%sother=%#x", text[0] ? "|" : "", revents & ~known);
        strcat(text, rest);
    }
    if (!text[0])
        strcpy(text, "0");
    return text;
}

/* The revents poll() reports for `fd` right now (timeout 0). */
static __attribute__((unused)) int poll_now(int fd, int events)
{
    struct pollfd p = {.fd = fd, .events = (short)events};
    int n = poll(&p, 1, 0);
    return n < 0 ? -1 : p.revents;
}

/* Waits up to PEER_WAIT_MS for any of `events` (or ERR/HUP) on `fd`; returns revents
 * (0 if the wait ran out). */
static __attribute__((unused)) int wait_for(int fd, int events)
{
    struct pollfd p = {.fd = fd, .events = (short)events};
    int n;
    do {
        n = poll(&p, 1, PEER_WAIT_MS);
    } while (n < 0 && errno == EINTR);
    return n <= 0 ? 0 : p.revents;
}

static __attribute__((unused)) struct sockaddr_in loopback_addr(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* The local address of `fd` (getsockname), or family 0 on error. */
static __attribute__((unused)) struct sockaddr_in local_addr(int fd)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        a.sin_family = 0;
    return a;
}

/* The peer address of `fd` (getpeername), or family 0 on error. */
static __attribute__((unused)) struct sockaddr_in peer_addr(int fd)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a;
    if (getpeername(fd, (struct sockaddr *)&a, &len) < 0)
        a.sin_family = 0;
    return a;
}

static __attribute__((unused)) uint16_t local_port(int fd)
{
    return ntohs(local_addr(fd).sin_port);
}

static __attribute__((unused)) int same_addr(struct sockaddr_in a, struct sockaddr_in b)
{
    return a.sin_family == b.sin_family && a.sin_port == b.sin_port &&
           a.sin_addr.s_addr == b.sin_addr.s_addr;
}

static __attribute__((unused)) int is_loopback(struct sockaddr_in a)
{
    return a.sin_family == AF_INET && a.sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

/* A socket of `type` (plus flags) bound to 127.0.0.1:0. */
static __attribute__((unused)) int bound_socket(int type)
{
    int fd = (int)need("socket", socket(AF_INET, type, 0));
    struct sockaddr_in a = loopback_addr(0);
    need("bind 127.0.0.1:0", bind(fd, (struct sockaddr *)&a, sizeof a));
    return fd;
}

/* A TCP listener on 127.0.0.1 with a kernel-chosen port. */
static __attribute__((unused)) int tcp_listener(int backlog, int type_flags)
{
    int fd = bound_socket(SOCK_STREAM | type_flags);
    need("listen", listen(fd, backlog));
    return fd;
}

/* A blocking TCP connection to 127.0.0.1:port. */
static __attribute__((unused)) int tcp_connect(uint16_t port)
{
    int fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = loopback_addr(port);
    need("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
    return fd;
}

/* An accepted connection from `listener`, waiting for it first. */
static __attribute__((unused)) int tcp_accept(int listener)
{
    wait_for(listener, POLLIN);
    return (int)need("accept", accept4(listener, NULL, NULL, 0));
}

static __attribute__((unused)) int set_nonblocking(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

/* Writes all of buf (blocking socket), retrying short writes. */
static __attribute__((unused)) long write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return (long)done;
}

/* Reads exactly len bytes (blocking socket); returns how many arrived before EOF. */
static __attribute__((unused)) long read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (long)done;
}

/* The byte at `offset` of stream number `seed`: an affine pattern whose period
 * (251, prime) never lines up with buffer sizes, so a lost, duplicated or reordered
 * chunk is caught. */
static __attribute__((unused)) unsigned char pattern_byte(unsigned seed, size_t offset)
{
    return (unsigned char)((offset * 7 + seed * 13 + offset / 251) % 251);
}

static __attribute__((unused)) void fill_pattern(unsigned char *buf, size_t len, unsigned seed,
                                                 size_t start)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(seed, start + i);
}

/* Counts bytes of buf that differ from the pattern at stream offset `start`. */
static __attribute__((unused)) size_t pattern_mismatches(const unsigned char *buf, size_t len,
                                                         unsigned seed, size_t start)
{
    size_t bad = 0;
    for (size_t i = 0; i < len; i++)
        bad += buf[i] != pattern_byte(seed, start + i);
    return bad;
}

static __attribute__((unused)) long ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

static __attribute__((unused)) long ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return ms_between(start, &now);
}

#endif
