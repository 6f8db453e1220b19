/*
 * net_udp: UDP over 127.0.0.1.
 *
 * sendto/recvfrom with source addresses (including an implicitly bound sender),
 * datagram boundaries, truncation (MSG_TRUNC both ways), zero-length datagrams,
 * FIONREAD, connected sockets (send/recv, filtering of other senders, disconnecting
 * with AF_UNSPEC), EDESTADDRREQ, sendmmsg/recvmmsg, the largest datagram and
 * EMSGSIZE, and a receive blocked in another thread.
 *
 * Every line is fixed: ports the kernel picks are reported only as facts about them.
 * Exit status 1 if any check fails.
 */
#define _GNU_SOURCE
#include "net_common.h"

#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

#define WATCHDOG_SECS 30
#define MAX_DATAGRAM 65507

static int udp_socket(void)
{
    return bound_socket(SOCK_DGRAM);
}

static long send_to(int fd, const void *buf, size_t len, int to)
{
    struct sockaddr_in a = local_addr(to);
    return sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof a);
}

/* Receives one datagram (waiting for it) and prints "label: N [text]". Returns N. */
static long show_recv(const char *label, int fd, size_t cap)
{
    char buf[256] = {0};
    if (cap > sizeof buf)
        cap = sizeof buf;
    wait_for(fd, POLLIN);
    long n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n < 0)
        printf("%s: %s\n", label, net_errno_name(errno));
    else
        printf("%s: %ld [%.*s]\n", label, n, (int)n, buf);
    return n;
}

static void basics(void)
{
    printf("== basics\n");
    int fd = (int)need("socket", socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in a = local_addr(fd);
    check("getsockname of an unbound socket is 0.0.0.0:0",
          a.sin_family == AF_INET && a.sin_port == 0 && a.sin_addr.s_addr == 0);
    int type = 0;
    socklen_t type_len = sizeof type;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len);
    check("SO_TYPE is SOCK_DGRAM", type == SOCK_DGRAM);
    printf("poll of a fresh socket: %s\n", poll_mask_text(poll_now(fd, POLLIN | POLLOUT)));
    expect_net("send without a destination", send(fd, "x", 1, 0), EDESTADDRREQ);
    expect_net("write without a destination", write(fd, "x", 1), EDESTADDRREQ);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    expect_net("getpeername unconnected", getpeername(fd, (struct sockaddr *)&peer, &len), ENOTCONN);
    expect_net("shutdown unconnected", shutdown(fd, SHUT_RDWR), ENOTCONN);
    struct sockaddr_in zero_port = loopback_addr(0);
    expect_net("sendto port 0", sendto(fd, "x", 1, 0, (struct sockaddr *)&zero_port, sizeof zero_port), EINVAL);
    expect_net("listen on a datagram socket", listen(fd, 1), EOPNOTSUPP);
    expect_net("accept on a datagram socket", accept(fd, NULL, NULL), EOPNOTSUPP);
    close(fd);

    fd = udp_socket();
    a = local_addr(fd);
    check("bound to 127.0.0.1", is_loopback(a));
    check("bind to port 0 picked a nonzero port", a.sin_port != 0);
    char buf[8];
    expect_net("recv with nothing queued (MSG_DONTWAIT)", recv(fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    int other = (int)need("socket", socket(AF_INET, SOCK_DGRAM, 0));
    expect_net("bind to a port in use", bind(other, (struct sockaddr *)&a, sizeof a), EADDRINUSE);
    close(other);
    close(fd);
}

static void send_and_receive(void)
{
    printf("== sendto and recvfrom\n");
    watchdog(WATCHDOG_SECS, "sendto and recvfrom");
    int a = udp_socket(), b = udp_socket();
    expect_net("sendto", send_to(a, "one", 3, b), 0);
    printf("poll with a datagram queued: %s\n", poll_mask_text(wait_for(b, POLLIN)));
    char buf[64] = {0};
    struct sockaddr_in from;
    socklen_t from_len = sizeof from;
    long n = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
    printf("recvfrom: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    check("source address is the sender's", from_len == sizeof from && same_addr(from, local_addr(a)));

    /* An unbound sender is bound to a port on its first sendto. */
    int c = (int)need("socket", socket(AF_INET, SOCK_DGRAM, 0));
    expect_net("sendto from an unbound socket", send_to(c, "auto", 4, b), 0);
    struct sockaddr_in c_local = local_addr(c);
    check("the sender was bound to a nonzero port", c_local.sin_port != 0);
    check("the sender was bound to the wildcard address", c_local.sin_addr.s_addr == htonl(INADDR_ANY));
    wait_for(b, POLLIN);
    from_len = sizeof from;
    n = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
    printf("recvfrom: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    check("source is 127.0.0.1 and the implicit port", is_loopback(from) && from.sin_port == c_local.sin_port);

    /* Datagram boundaries are kept. */
    send_to(a, "ab", 2, b);
    send_to(a, "cde", 3, b);
    send_to(a, "fghi", 4, b);
    show_recv("first", b, 64);
    show_recv("second", b, 64);
    show_recv("third", b, 64);

    /* FIONREAD is the size of the first queued datagram, not the total. */
    send_to(a, "seven!!", 7, b);
    send_to(a, "333", 3, b);
    wait_for(b, POLLIN);
    int avail = -1;
    expect_net("FIONREAD", ioctl(b, FIONREAD, &avail), 0);
    printf("FIONREAD with 7 then 3 bytes queued: %d\n", avail);
    show_recv("drain", b, 64);
    show_recv("drain", b, 64);
    avail = -1;
    ioctl(b, FIONREAD, &avail);
    printf("FIONREAD with nothing queued: %d\n", avail);
    close(a);
    close(b);
    close(c);
}

static void truncation(void)
{
    printf("== truncation\n");
    watchdog(WATCHDOG_SECS, "truncation");
    int a = udp_socket(), b = udp_socket();
    char big[100];
    for (int i = 0; i < 100; i++)
        big[i] = (char)('a' + i % 26);

    send_to(a, big, sizeof big, b);
    send_to(a, "next", 4, b);
    show_recv("recv 10 of 100", b, 10);
    show_recv("the rest was discarded", b, 64);

    send_to(a, big, sizeof big, b);
    wait_for(b, POLLIN);
    char buf[16] = {0};
    long n = recv(b, buf, 10, MSG_TRUNC);
    printf("recv MSG_TRUNC into 10 bytes: %ld [%.*s]\n", n, 10, buf);

    send_to(a, big, sizeof big, b);
    wait_for(b, POLLIN);
    n = recv(b, NULL, 0, MSG_PEEK | MSG_TRUNC);
    printf("peek the length with MSG_PEEK|MSG_TRUNC: %ld\n", n);
    struct iovec iov = {.iov_base = buf, .iov_len = 10};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    n = recvmsg(b, &msg, 0);
    printf("recvmsg into 10 bytes: %ld\n", n);
    check("MSG_TRUNC is set in msg_flags", (msg.msg_flags & MSG_TRUNC) != 0);

    send_to(a, "fits", 4, b);
    wait_for(b, POLLIN);
    iov.iov_len = sizeof buf;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    n = recvmsg(b, &msg, 0);
    printf("recvmsg of a datagram that fits: %ld\n", n);
    check("MSG_TRUNC is clear in msg_flags", (msg.msg_flags & MSG_TRUNC) == 0);
    close(a);
    close(b);
}

static void zero_length(void)
{
    printf("== zero-length datagrams\n");
    watchdog(WATCHDOG_SECS, "zero-length datagrams");
    int a = udp_socket(), b = udp_socket();
    expect_net("sendto of 0 bytes", send_to(a, "", 0, b), 0);
    printf("poll: %s\n", poll_mask_text(wait_for(b, POLLIN)));
    char buf[8];
    struct sockaddr_in from;
    socklen_t from_len = sizeof from;
    long n = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
    printf("recvfrom: %ld\n", n);
    check("it came from the sender", same_addr(from, local_addr(a)));
    expect_net("then nothing is left", recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    send_to(a, "", 0, b);
    send_to(a, "x", 1, b);
    show_recv("an empty datagram keeps its place", b, 8);
    show_recv("and the next follows", b, 8);
    close(a);
    close(b);
}

static void connected(void)
{
    printf("== connected sockets\n");
    watchdog(WATCHDOG_SECS, "connected UDP");
    int a = udp_socket(), b = udp_socket(), c = udp_socket();
    struct sockaddr_in b_addr = local_addr(b);
    expect_net("connect", connect(a, (struct sockaddr *)&b_addr, sizeof b_addr), 0);
    check("getpeername is the peer", same_addr(peer_addr(a), b_addr));
    expect_net("send", send(a, "to b", 4, 0), 0);
    show_recv("b got", b, 64);
    expect_net("write", write(a, "write", 5), 0);
    show_recv("b got", b, 64);

    /* Only the connected peer's datagrams reach a. */
    send_to(c, "from c", 6, a);
    send_to(b, "from b", 6, a);
    show_recv("a got", a, 64);
    char buf[16];
    expect_net("nothing from c was queued", recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

    /* sendto with an explicit address still works on a connected UDP socket. */
    expect_net("sendto elsewhere while connected", send_to(a, "to c", 4, c), 0);
    show_recv("c got", c, 64);

    /* Re-connecting moves the filter. */
    struct sockaddr_in c_addr = local_addr(c);
    expect_net("connect to another peer", connect(a, (struct sockaddr *)&c_addr, sizeof c_addr), 0);
    send_to(b, "from b", 6, a);
    send_to(c, "from c", 6, a);
    show_recv("a got", a, 64);

    /* AF_UNSPEC dissolves the association. */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    expect_net("connect AF_UNSPEC", connect(a, &unspec, sizeof unspec), 0);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    expect_net("getpeername after AF_UNSPEC", getpeername(a, (struct sockaddr *)&peer, &len), ENOTCONN);
    expect_net("send after AF_UNSPEC", send(a, "x", 1, 0), EDESTADDRREQ);
    send_to(b, "b again", 7, a);
    show_recv("a got", a, 64);
    close(a);
    close(b);
    close(c);
}

static void multiple_messages(void)
{
    printf("== sendmmsg and recvmmsg\n");
    watchdog(WATCHDOG_SECS, "sendmmsg and recvmmsg");
    int a = udp_socket(), b = udp_socket();
    struct sockaddr_in to = local_addr(b);
    const char *texts[3] = {"alpha", "be", "gamma!"};
    struct iovec out_iov[3];
    struct mmsghdr out[3];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) {
        out_iov[i] = (struct iovec){.iov_base = (void *)texts[i], .iov_len = strlen(texts[i])};
        out[i].msg_hdr.msg_name = &to;
        out[i].msg_hdr.msg_namelen = sizeof to;
        out[i].msg_hdr.msg_iov = &out_iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(a, out, 3, 0);
    printf("sendmmsg: %d, lengths %u %u %u\n", sent, out[0].msg_len, out[1].msg_len, out[2].msg_len);

    char bufs[3][32];
    struct iovec in_iov[3];
    struct mmsghdr in[3];
    struct sockaddr_in from[3];
    memset(in, 0, sizeof in);
    memset(bufs, 0, sizeof bufs);
    for (int i = 0; i < 3; i++) {
        in_iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof bufs[i]};
        in[i].msg_hdr.msg_name = &from[i];
        in[i].msg_hdr.msg_namelen = sizeof from[i];
        in[i].msg_hdr.msg_iov = &in_iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(b, in, 3, 0, NULL);
    printf("recvmmsg: %d\n", got);
    for (int i = 0; i < got && i < 3; i++)
        printf("  [%d] %u [%.*s] from the sender: %s\n", i, in[i].msg_len, (int)in[i].msg_len, bufs[i],
               same_addr(from[i], local_addr(a)) ? "yes" : "no");
    expect_net("recvmmsg with nothing queued (MSG_DONTWAIT)", recvmmsg(b, in, 3, MSG_DONTWAIT, NULL), EAGAIN);

    /* MSG_WAITFORONE: return what is there once the first datagram arrived. */
    send_to(a, "solo", 4, b);
    wait_for(b, POLLIN);
    got = recvmmsg(b, in, 3, MSG_WAITFORONE, NULL);
    printf("recvmmsg MSG_WAITFORONE with one queued: %d [%.*s]\n", got, got > 0 ? (int)in[0].msg_len : 0, bufs[0]);
    close(a);
    close(b);
}

static void sizes(void)
{
    printf("== datagram sizes\n");
    watchdog(WATCHDOG_SECS, "datagram sizes");
    int a = udp_socket(), b = udp_socket();
    int bufsize = 1 << 20;
    setsockopt(b, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    unsigned char *out = malloc(MAX_DATAGRAM + 1), *in = malloc(MAX_DATAGRAM + 1);
    fill_pattern(out, MAX_DATAGRAM + 1, 5, 0);
    long n = send_to(a, out, MAX_DATAGRAM, b);
    printf("sendto of %d bytes: %ld\n", MAX_DATAGRAM, n);
    wait_for(b, POLLIN);
    n = recv(b, in, MAX_DATAGRAM + 1, 0);
    printf("received %ld bytes, mismatches %zu\n", n,
           n > 0 ? pattern_mismatches(in, (size_t)n, 5, 0) : (size_t)0);
    expect_net("sendto of 65508 bytes", send_to(a, out, MAX_DATAGRAM + 1, b), EMSGSIZE);
    n = send_to(a, out, 9000, b);
    wait_for(b, POLLIN);
    n = recv(b, in, MAX_DATAGRAM, 0);
    printf("a 9000-byte datagram: %ld bytes, mismatches %zu\n", n,
           n > 0 ? pattern_mismatches(in, (size_t)n, 5, 0) : (size_t)0);
    free(out);
    free(in);
    close(a);
    close(b);
}

struct blocked_recv {
    int fd;
    long n;
    char buf[32];
};

static void *receive_blocking(void *arg)
{
    struct blocked_recv *r = arg;
    r->n = recv(r->fd, r->buf, sizeof r->buf, 0);
    return NULL;
}

static void blocking(void)
{
    printf("== blocking receive\n");
    watchdog(WATCHDOG_SECS, "blocking receive");
    int a = udp_socket(), b = udp_socket();
    struct blocked_recv r = {.fd = b};
    pthread_t t;
    pthread_create(&t, NULL, receive_blocking, &r);
    send_to(a, "wake up", 7, b);
    pthread_join(t, NULL);
    printf("the blocked receiver got: %ld [%.*s]\n", r.n, (int)(r.n > 0 ? r.n : 0), r.buf);

    struct timeval tv = {.tv_sec = 0, .tv_usec = 150000};
    setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char buf[8];
    expect_net("recv with SO_RCVTIMEO and nothing queued", recv(b, buf, sizeof buf, 0), EAGAIN);
    check("it waited at least 100 ms", ms_since(&start) >= 100);
    set_nonblocking(b, 1);
    expect_net("recv on a non-blocking socket", recv(b, buf, sizeof buf, 0), EAGAIN);
    close(a);
    close(b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    watchdog(WATCHDOG_SECS, "basics");
    basics();
    send_and_receive();
    truncation();
    zero_length();
    connected();
    multiple_messages();
    sizes();
    blocking();
    watchdog(0, NULL);
    printf("net_udp: %s\n", checks_failed ? "some checks did not pass" : "done");
    return checks_failed ? 1 : 0;
}
