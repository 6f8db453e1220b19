/*
 * net_tcp: TCP over 127.0.0.1 as servers and clients use it.
 *
 * Connection set-up (blocking and non-blocking connect, accept4 flags, backlog order),
 * addresses, the errors a program meets (ECONNREFUSED, EADDRINUSE, EAGAIN, EPIPE with
 * SIGPIPE, ECONNRESET, EINVAL, ENOTCONN, EISCONN), half-close, MSG_PEEK, socket options
 * read back, SO_RCVTIMEO, poll masks in telling states, large echoes through threads
 * and through a single-threaded epoll loop, and partial non-blocking writes.
 *
 * Every line is fixed: ports and addresses the kernel picks are reported only as facts
 * about them. Each phase runs under the alarm() watchdog of common.h. Exit status 1 if
 * any check fails.
 */
#define _GNU_SOURCE
#include "net_common.h"

#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <unistd.h>

#define WATCHDOG_SECS 30

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

/* A connected pair: `client` made by connect(), `server` by accept(). */
struct pair {
    int client;
    int server;
};

static struct pair connected_pair(void)
{
    int listener = tcp_listener(4, 0);
    struct pair p;
    p.client = tcp_connect(local_port(listener));
    p.server = tcp_accept(listener);
    close(listener);
    return p;
}

static void close_pair(struct pair p)
{
    close(p.client);
    close(p.server);
}

static int get_int_option(int fd, int level, int name)
{
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(fd, level, name, &value, &len) < 0)
        return -1000 - errno;
    return value;
}

static void fresh_socket(void)
{
    printf("== fresh socket\n");
    int fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = local_addr(fd);
    check("getsockname of an unbound socket is 0.0.0.0:0",
          a.sin_family == AF_INET && a.sin_port == 0 && a.sin_addr.s_addr == 0);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    expect_net("getpeername unconnected", getpeername(fd, (struct sockaddr *)&peer, &len), ENOTCONN);
    printf("poll of a fresh socket: %s\n", poll_mask_text(poll_now(fd, POLLIN | POLLOUT | POLLRDHUP)));
    expect_net("accept on a fresh socket", accept(fd, NULL, NULL), EINVAL);
    char c;
    expect_net("read unconnected", read(fd, &c, 1), ENOTCONN);
    expect_net("send unconnected", send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    /* Linux records the shutdown even though it reports ENOTCONN; so this comes last. */
    expect_net("shutdown unconnected", shutdown(fd, SHUT_RDWR), ENOTCONN);
    printf("SO_TYPE: %s\n", get_int_option(fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM ? "SOCK_STREAM" : "other");
    check("SO_PROTOCOL is IPPROTO_TCP", get_int_option(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP);
    check("SO_DOMAIN is AF_INET", get_int_option(fd, SOL_SOCKET, SO_DOMAIN) == AF_INET);
    printf("SO_ERROR: %d\n", get_int_option(fd, SOL_SOCKET, SO_ERROR));
    int bogus = 1;
    expect_net("setsockopt unknown TCP option", setsockopt(fd, IPPROTO_TCP, 9999, &bogus, sizeof bogus),
               ENOPROTOOPT);
    expect_net("setsockopt with a short option", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &bogus, 1), EINVAL);
    struct sockaddr_in six = loopback_addr(0);
    six.sin_family = AF_INET6;
    expect_net("bind with the wrong family", bind(fd, (struct sockaddr *)&six, sizeof six), EAFNOSUPPORT);
    struct sockaddr_in small = loopback_addr(0);
    expect_net("bind with a short address", bind(fd, (struct sockaddr *)&small, 8), EINVAL);
    close(fd);
    int pipefd[2];
    need("pipe", pipe(pipefd));
    len = sizeof peer;
    expect_net("getsockname on a pipe", getsockname(pipefd[0], (struct sockaddr *)&peer, &len), ENOTSOCK);
    expect_net("listen on a pipe", listen(pipefd[0], 1), ENOTSOCK);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void connect_and_accept(void)
{
    printf("== connect and accept4\n");
    watchdog(WATCHDOG_SECS, "connect and accept4");
    int listener = tcp_listener(4, 0);
    struct sockaddr_in listen_at = local_addr(listener);
    check("listener bound to 127.0.0.1", is_loopback(listen_at));
    check("listener port is nonzero", listen_at.sin_port != 0);
    printf("SO_ACCEPTCONN on the listener: %d\n", get_int_option(listener, SOL_SOCKET, SO_ACCEPTCONN));
    printf("poll of an idle listener: %s\n", poll_mask_text(poll_now(listener, POLLIN | POLLOUT)));
    expect_net("listen again (backlog change)", listen(listener, 8), 0);

    int client = tcp_connect(ntohs(listen_at.sin_port));
    int revents = wait_for(listener, POLLIN);
    printf("poll of a listener with a pending connection: %s\n", poll_mask_text(revents));
    struct sockaddr_in from;
    socklen_t from_len = sizeof from;
    int server = (int)accept4(listener, (struct sockaddr *)&from, &from_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    expect_net("accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC", server, 0);
    if (server < 0)
        exit(1);
    check("accept4 address length is 16", from_len == sizeof(struct sockaddr_in));
    check("accepted socket is non-blocking", (fcntl(server, F_GETFL) & O_NONBLOCK) != 0);
    check("accepted socket is close-on-exec", fcntl(server, F_GETFD) == FD_CLOEXEC);
    check("listener stays blocking", (fcntl(listener, F_GETFL) & O_NONBLOCK) == 0);
    printf("SO_ACCEPTCONN on the connection: %d\n", get_int_option(server, SOL_SOCKET, SO_ACCEPTCONN));

    struct sockaddr_in client_local = local_addr(client);
    check("client bound to 127.0.0.1", is_loopback(client_local));
    check("client port is unprivileged", ntohs(client_local.sin_port) >= 1024);
    check("client port differs from the listener's", client_local.sin_port != listen_at.sin_port);
    check("accept4 address is the client's address", same_addr(from, client_local));
    check("getpeername on the server side is the client's address", same_addr(peer_addr(server), client_local));
    check("getpeername on the client is the listener's address", same_addr(peer_addr(client), listen_at));
    check("the accepted socket has the listener's local address", same_addr(local_addr(server), listen_at));

    char buf[16];
    expect_net("read with no data on a non-blocking socket", read(server, buf, sizeof buf), EAGAIN);
    expect_net("recv MSG_DONTWAIT on a blocking socket", recv(client, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    printf("poll of an idle connection: %s\n", poll_mask_text(poll_now(client, POLLIN | POLLOUT | POLLRDHUP)));

    struct sockaddr_in again = listen_at;
    expect_net("connect on a connected socket", connect(client, (struct sockaddr *)&again, sizeof again),
               EISCONN);
    expect_net("accept on a connected socket", accept(client, NULL, NULL), EINVAL);
    expect_net("listen on a connected socket", listen(client, 1), EINVAL);

    /* accept with a NULL address and a non-blocking listener with nothing pending. */
    set_nonblocking(listener, 1);
    expect_net("accept on an empty non-blocking listener", accept(listener, NULL, NULL), EAGAIN);
    close(server);
    close(client);
    close(listener);
}

static void peek_and_small_messages(void)
{
    printf("== MSG_PEEK\n");
    watchdog(WATCHDOG_SECS, "MSG_PEEK");
    struct pair p = connected_pair();
    need("send", send(p.client, "hello", 5, 0));
    int revents = wait_for(p.server, POLLIN);
    printf("poll after data arrived: %s\n", poll_mask_text(revents));
    char buf[16] = {0};
    long n = recv(p.server, buf, sizeof buf, MSG_PEEK);
    printf("peek: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    memset(buf, 0, sizeof buf);
    n = recv(p.server, buf, 2, MSG_PEEK);
    printf("peek 2: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    memset(buf, 0, sizeof buf);
    n = recv(p.server, buf, sizeof buf, 0);
    printf("read after peek: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    expect_net("peek on an empty socket with MSG_DONTWAIT", recv(p.server, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT),
               EAGAIN);

    /* MSG_WAITALL collects two sends into one read. */
    need("send", send(p.client, "abc", 3, 0));
    need("send", send(p.client, "defg", 4, 0));
    memset(buf, 0, sizeof buf);
    n = recv(p.server, buf, 7, MSG_WAITALL);
    printf("MSG_WAITALL 7: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    close_pair(p);
}

static void half_close(void)
{
    printf("== shutdown(SHUT_WR) and EOF\n");
    watchdog(WATCHDOG_SECS, "half-close");
    struct pair p = connected_pair();
    need("send request", send(p.client, "request", 7, 0));
    expect_net("shutdown(SHUT_WR)", shutdown(p.client, SHUT_WR), 0);
    char buf[64] = {0};
    long n = read_full(p.server, buf, sizeof buf);
    printf("server read until EOF: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    printf("server read after EOF: %ld\n", (long)read(p.server, buf, sizeof buf));
    printf("server poll after the client's FIN: %s\n",
           poll_mask_text(poll_now(p.server, POLLIN | POLLOUT | POLLRDHUP)));
    printf("client poll after its own SHUT_WR: %s\n",
           poll_mask_text(poll_now(p.client, POLLIN | POLLOUT | POLLRDHUP)));
    need("send reply", send(p.server, "reply", 5, 0));
    expect_net("server shutdown(SHUT_WR)", shutdown(p.server, SHUT_WR), 0);
    memset(buf, 0, sizeof buf);
    n = read_full(p.client, buf, sizeof buf);
    printf("client read the reply until EOF: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    printf("client poll with both directions shut: %s\n",
           poll_mask_text(wait_for(p.client, POLLIN | POLLOUT | POLLRDHUP)));
    printf("server poll with both directions shut: %s\n",
           poll_mask_text(poll_now(p.server, POLLIN | POLLOUT | POLLRDHUP)));

    /* Writing after our own SHUT_WR: EPIPE, with SIGPIPE unless MSG_NOSIGNAL. */
    sigpipes = 0;
    expect_net("write after SHUT_WR", write(p.client, "x", 1), EPIPE);
    printf("SIGPIPE delivered: %d\n", (int)sigpipes);
    expect_net("send MSG_NOSIGNAL after SHUT_WR", send(p.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    printf("SIGPIPE after MSG_NOSIGNAL: %d\n", (int)sigpipes);
    close_pair(p);

    /* SHUT_RD on a live connection: reads see EOF at once, writes still work. */
    p = connected_pair();
    expect_net("shutdown(SHUT_RD)", shutdown(p.client, SHUT_RD), 0);
    printf("read after SHUT_RD: %ld\n", (long)read(p.client, buf, sizeof buf));
    printf("poll after SHUT_RD: %s\n", poll_mask_text(poll_now(p.client, POLLIN | POLLOUT | POLLRDHUP)));
    expect_net("write after SHUT_RD", send(p.client, "still", 5, MSG_NOSIGNAL), 0);
    memset(buf, 0, sizeof buf);
    wait_for(p.server, POLLIN);
    n = read(p.server, buf, sizeof buf);
    printf("the peer still receives: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    expect_net("shutdown with a bad how", shutdown(p.client, 7), EINVAL);
    close_pair(p);
}

static void peer_gone(void)
{
    printf("== writing to a closed peer\n");
    watchdog(WATCHDOG_SECS, "writing to a closed peer");
    struct pair p = connected_pair();
    close(p.server);
    char buf[8];
    int revents = wait_for(p.client, POLLRDHUP);
    printf("poll after the peer closed: %s\n", poll_mask_text(revents));
    printf("read after the peer closed: %ld\n", (long)read(p.client, buf, sizeof buf));
    /* The first write is accepted; the closed peer answers it with RST. */
    expect_net("first write to the closed peer", send(p.client, "x", 1, MSG_NOSIGNAL), 0);
    revents = wait_for(p.client, POLLERR);
    printf("poll after the peer's RST: %s\n", poll_mask_text(revents));
    sigpipes = 0;
    expect_net("second write to the closed peer", write(p.client, "x", 1), EPIPE);
    printf("SIGPIPE delivered: %d\n", (int)sigpipes);
    printf("SO_ERROR afterwards: %d\n", get_int_option(p.client, SOL_SOCKET, SO_ERROR));
    close(p.client);
}

static void resets(void)
{
    printf("== ECONNRESET\n");
    watchdog(WATCHDOG_SECS, "ECONNRESET");
    char buf[64];

    /* Closing with unread data sends RST instead of FIN. */
    struct pair p = connected_pair();
    need("send", send(p.client, "unread", 6, 0));
    wait_for(p.server, POLLIN);
    close(p.server);
    int revents = wait_for(p.client, POLLIN | POLLRDHUP);
    printf("poll after a close with unread data: %s\n", poll_mask_text(revents));
    printf("SO_ERROR: %s\n", net_errno_name(get_int_option(p.client, SOL_SOCKET, SO_ERROR)));
    close(p.client);

    p = connected_pair();
    need("send", send(p.client, "unread", 6, 0));
    wait_for(p.server, POLLIN);
    close(p.server);
    wait_for(p.client, POLLIN | POLLRDHUP);
    expect_net("read after a close with unread data", read(p.client, buf, sizeof buf), ECONNRESET);
    printf("read after ECONNRESET: %ld\n", (long)read(p.client, buf, sizeof buf));
    expect_net("write after ECONNRESET", send(p.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    close(p.client);

    /* SO_LINGER {1, 0}: close aborts the connection. */
    p = connected_pair();
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    expect_net("SO_LINGER {1,0}", setsockopt(p.server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    struct linger back;
    socklen_t len = sizeof back;
    getsockopt(p.server, SOL_SOCKET, SO_LINGER, &back, &len);
    printf("SO_LINGER read back: {%d,%d}\n", back.l_onoff, back.l_linger);
    close(p.server);
    revents = wait_for(p.client, POLLIN | POLLRDHUP);
    printf("poll after an abortive close: %s\n", poll_mask_text(revents));
    expect_net("read after an abortive close", read(p.client, buf, sizeof buf), ECONNRESET);
    close(p.client);
}

static void refused_and_in_use(void)
{
    printf("== ECONNREFUSED, EADDRINUSE, SO_REUSEADDR\n");
    watchdog(WATCHDOG_SECS, "refused and in use");
    /* A bound socket that does not listen holds a port nobody listens on. */
    int holder = bound_socket(SOCK_STREAM);
    uint16_t closed_port = local_port(holder);
    int fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in to = loopback_addr(closed_port);
    expect_net("blocking connect to a port nobody listens on", connect(fd, (struct sockaddr *)&to, sizeof to),
               ECONNREFUSED);
    close(fd);

    fd = (int)need("socket", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    expect_net("non-blocking connect to it", connect(fd, (struct sockaddr *)&to, sizeof to), EINPROGRESS);
    int revents = wait_for(fd, POLLOUT);
    printf("poll after the refusal: %s\n", poll_mask_text(revents));
    printf("SO_ERROR: %s\n", net_errno_name(get_int_option(fd, SOL_SOCKET, SO_ERROR)));
    printf("SO_ERROR read again: %s\n", net_errno_name(get_int_option(fd, SOL_SOCKET, SO_ERROR)));
    close(fd);

    /* Two sockets on one port. */
    int listener = tcp_listener(4, 0);
    struct sockaddr_in taken = local_addr(listener);
    fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    expect_net("bind to a listening port", bind(fd, (struct sockaddr *)&taken, sizeof taken), EADDRINUSE);
    close(fd);
    fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    printf("SO_REUSEADDR read back: %d\n", get_int_option(fd, SOL_SOCKET, SO_REUSEADDR));
    expect_net("bind to a listening port with SO_REUSEADDR", bind(fd, (struct sockaddr *)&taken, sizeof taken),
               EADDRINUSE);
    close(fd);
    fd = bound_socket(SOCK_STREAM);
    expect_net("bind a bound socket again", bind(fd, (struct sockaddr *)&taken, sizeof taken), EINVAL);
    close(fd);

    close(listener);

    /* The side that closes first keeps the port in TIME_WAIT. A new listener may bind
     * it only if both it and the old socket set SO_REUSEADDR (the usual server
     * restart). */
    listener = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in any = loopback_addr(0);
    need("bind", bind(listener, (struct sockaddr *)&any, sizeof any));
    need("listen", listen(listener, 4));
    taken = local_addr(listener);
    int client = tcp_connect(ntohs(taken.sin_port));
    int server = tcp_accept(listener);
    close(listener);
    close(server);
    wait_for(client, POLLRDHUP);
    close(client);
    fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    expect_net("bind to a port in TIME_WAIT", bind(fd, (struct sockaddr *)&taken, sizeof taken), EADDRINUSE);
    close(fd);
    fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    expect_net("bind to a port in TIME_WAIT with SO_REUSEADDR", bind(fd, (struct sockaddr *)&taken, sizeof taken), 0);
    expect_net("listen on it", listen(fd, 1), 0);
    close(fd);
    close(holder);
}

static void nonblocking_connect(void)
{
    printf("== non-blocking connect\n");
    watchdog(WATCHDOG_SECS, "non-blocking connect");
    int listener = tcp_listener(4, 0);
    struct sockaddr_in to = local_addr(listener);
    int fd = (int)need("socket", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    expect_net("connect", connect(fd, (struct sockaddr *)&to, sizeof to), EINPROGRESS);
    int revents = wait_for(fd, POLLOUT);
    printf("poll once connected: %s\n", poll_mask_text(revents));
    printf("SO_ERROR: %s\n", net_errno_name(get_int_option(fd, SOL_SOCKET, SO_ERROR)));
    check("getpeername is the listener", same_addr(peer_addr(fd), to));
    /* Linux reports the finished connect once more with success, then EISCONN. */
    expect_net("connect again once connected", connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    expect_net("connect a third time", connect(fd, (struct sockaddr *)&to, sizeof to), EISCONN);
    int server = tcp_accept(listener);
    need("send", send(fd, "ping", 4, 0));
    char buf[8] = {0};
    wait_for(server, POLLIN);
    long n = read(server, buf, sizeof buf);
    printf("server got: %ld [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    close(server);
    close(fd);
    close(listener);
}

static void backlog(void)
{
    printf("== backlog\n");
    watchdog(WATCHDOG_SECS, "backlog");
    enum { CLIENTS = 5 };
    int listener = tcp_listener(8, 0);
    uint16_t port = local_port(listener);
    int clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        clients[i] = tcp_connect(port);
    printf("%d connects completed before any accept\n", CLIENTS);
    int in_order = 1;
    for (int i = 0; i < CLIENTS; i++) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        wait_for(listener, POLLIN);
        int s = (int)need("accept", accept(listener, (struct sockaddr *)&from, &len));
        if (!same_addr(from, local_addr(clients[i])))
            in_order = 0;
        /* Each connection carries its own byte. */
        char tag = (char)('a' + i), got = 0;
        need("send tag", send(clients[i], &tag, 1, 0));
        wait_for(s, POLLIN);
        if (read(s, &got, 1) != 1 || got != tag)
            in_order = 0;
        close(s);
    }
    check("accept returns connections in connect order", in_order);
    set_nonblocking(listener, 1);
    expect_net("accept with nothing else pending", accept(listener, NULL, NULL), EAGAIN);
    for (int i = 0; i < CLIENTS; i++)
        close(clients[i]);
    close(listener);
}

static void options(void)
{
    printf("== options\n");
    struct pair p = connected_pair();
    printf("TCP_NODELAY default: %d\n", get_int_option(p.client, IPPROTO_TCP, TCP_NODELAY));
    int five = 5;
    expect_net("set TCP_NODELAY 5", setsockopt(p.client, IPPROTO_TCP, TCP_NODELAY, &five, sizeof five), 0);
    printf("TCP_NODELAY read back: %d\n", get_int_option(p.client, IPPROTO_TCP, TCP_NODELAY));
    printf("SO_KEEPALIVE default: %d\n", get_int_option(p.client, SOL_SOCKET, SO_KEEPALIVE));
    expect_net("set SO_KEEPALIVE 5", setsockopt(p.client, SOL_SOCKET, SO_KEEPALIVE, &five, sizeof five), 0);
    printf("SO_KEEPALIVE read back: %d\n", get_int_option(p.client, SOL_SOCKET, SO_KEEPALIVE));
    int zero = 0;
    setsockopt(p.client, SOL_SOCKET, SO_KEEPALIVE, &zero, sizeof zero);
    printf("SO_KEEPALIVE cleared: %d\n", get_int_option(p.client, SOL_SOCKET, SO_KEEPALIVE));
    check("SO_RCVBUF is positive", get_int_option(p.client, SOL_SOCKET, SO_RCVBUF) > 0);
    check("SO_SNDBUF is positive", get_int_option(p.client, SOL_SOCKET, SO_SNDBUF) > 0);
    int value = 0;
    socklen_t len = 2;
    expect_net("getsockopt with a 2-byte buffer", getsockopt(p.client, IPPROTO_TCP, TCP_NODELAY, &value, &len), 0);
    expect_net("getsockopt at a bad level", getsockopt(p.client, 12345, 1, &value, &len), EOPNOTSUPP);
    close_pair(p);
}

static void receive_timeout(void)
{
    printf("== SO_RCVTIMEO\n");
    watchdog(WATCHDOG_SECS, "SO_RCVTIMEO");
    struct pair p = connected_pair();
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    expect_net("set SO_RCVTIMEO 200 ms", setsockopt(p.client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char buf[8];
    expect_net("read with nothing to read", read(p.client, buf, sizeof buf), EAGAIN);
    /* A lower bound only: the kernel must not give up early. */
    check("it waited at least 150 ms", ms_since(&start) >= 150);
    need("send", send(p.server, "late", 4, 0));
    long n = read(p.client, buf, sizeof buf);
    printf("read once data arrives: %ld\n", n);
    struct timeval bad = {.tv_sec = 0, .tv_usec = 1000000};
    expect_net("SO_RCVTIMEO with tv_usec 1000000", setsockopt(p.client, SOL_SOCKET, SO_RCVTIMEO, &bad, sizeof bad),
               EDOM);
    close_pair(p);
}

/* Large transfers: sizes and seeds per client. */
#define ECHO_CLIENTS 4
#define ECHO_BYTES (1536 * 1024)

struct echo_client {
    int fd;
    unsigned seed;
    size_t received;
    size_t mismatches;
};

static void *echo_server_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    enum { CHUNK = 65536 };
    unsigned char *buf = malloc(CHUNK);
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (write_all(fd, buf, (size_t)n) < 0)
            break;
    }
    free(buf);
    close(fd);
    return NULL;
}

static void *echo_acceptor(void *arg)
{
    int listener = (int)(intptr_t)arg;
    pthread_t handlers[ECHO_CLIENTS];
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        int fd = tcp_accept(listener);
        pthread_create(&handlers[i], NULL, echo_server_conn, (void *)(intptr_t)fd);
    }
    for (int i = 0; i < ECHO_CLIENTS; i++)
        pthread_join(handlers[i], NULL);
    return NULL;
}

static void *echo_writer(void *arg)
{
    struct echo_client *c = arg;
    enum { CHUNK = 50000 };
    unsigned char *buf = malloc(CHUNK);
    for (size_t sent = 0; sent < ECHO_BYTES;) {
        size_t chunk = ECHO_BYTES - sent < CHUNK ? ECHO_BYTES - sent : CHUNK;
        fill_pattern(buf, chunk, c->seed, sent);
        if (write_all(c->fd, buf, chunk) < 0)
            break;
        sent += chunk;
    }
    free(buf);
    shutdown(c->fd, SHUT_WR);
    return NULL;
}

static void *echo_reader(void *arg)
{
    struct echo_client *c = arg;
    enum { CHUNK = 32768 };
    unsigned char *buf = malloc(CHUNK);
    for (;;) {
        ssize_t n = read(c->fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        c->mismatches += pattern_mismatches(buf, (size_t)n, c->seed, c->received);
        c->received += (size_t)n;
    }
    free(buf);
    return NULL;
}

static void threaded_echo(void)
{
    printf("== threaded echo\n");
    watchdog(120, "threaded echo");
    int listener = tcp_listener(ECHO_CLIENTS, 0);
    pthread_t acceptor;
    pthread_create(&acceptor, NULL, echo_acceptor, (void *)(intptr_t)listener);
    struct echo_client clients[ECHO_CLIENTS];
    pthread_t writers[ECHO_CLIENTS], readers[ECHO_CLIENTS];
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        clients[i] = (struct echo_client){.fd = tcp_connect(local_port(listener)), .seed = (unsigned)i + 1};
        pthread_create(&writers[i], NULL, echo_writer, &clients[i]);
        pthread_create(&readers[i], NULL, echo_reader, &clients[i]);
    }
    size_t total = 0, bad = 0;
    int complete = 1;
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        pthread_join(writers[i], NULL);
        pthread_join(readers[i], NULL);
        total += clients[i].received;
        bad += clients[i].mismatches;
        complete &= clients[i].received == ECHO_BYTES;
        close(clients[i].fd);
    }
    pthread_join(acceptor, NULL);
    close(listener);
    printf("%d clients echoed %zu bytes in total\n", ECHO_CLIENTS, total);
    check("every client got all its bytes back", complete);
    check("every echoed byte matches", bad == 0);
}

static void partial_writes(void)
{
    printf("== partial non-blocking writes\n");
    watchdog(60, "partial writes");
    struct pair p = connected_pair();
    set_nonblocking(p.client, 1);
    size_t big = 16u << 20;
    unsigned char *buf = malloc(big);
    if (!buf)
        need("malloc", -1);
    fill_pattern(buf, big, 9, 0);
    long first = write(p.client, buf, big);
    check("a 16 MiB non-blocking write took part of the buffer", first > 0 && (size_t)first < big);
    /* Fill whatever room is left, then the socket must refuse more. */
    size_t queued = first > 0 ? (size_t)first : 0;
    long n;
    while ((n = write(p.client, buf + queued, big - queued)) > 0)
        queued += (size_t)n;
    expect_net("write once the buffers are full", n, EAGAIN);
    printf("poll of a full socket: %s\n", poll_mask_text(poll_now(p.client, POLLOUT)));
    /* The reader drains everything; the writer waits for POLLOUT to finish the buffer. */
    size_t got = 0, bad = 0;
    unsigned char *in = malloc(65536);
    int saw_pollout = 0;
    while (got < big) {
        if (queued < big) {
            struct pollfd fds[2] = {{.fd = p.server, .events = POLLIN}, {.fd = p.client, .events = POLLOUT}};
            if (poll(fds, 2, PEER_WAIT_MS) <= 0)
                break;
            if (fds[1].revents & POLLOUT) {
                saw_pollout = 1;
                n = write(p.client, buf + queued, big - queued);
                if (n > 0)
                    queued += (size_t)n;
                if (queued == big)
                    shutdown(p.client, SHUT_WR);
            }
            if (!(fds[0].revents & POLLIN))
                continue;
        }
        n = read(p.server, in, 65536);
        if (n <= 0)
            break;
        bad += pattern_mismatches(in, (size_t)n, 9, got);
        got += (size_t)n;
    }
    check("POLLOUT came back as the reader drained", saw_pollout);
    printf("reader got %zu bytes, mismatches %zu\n", got, bad);
    free(in);
    free(buf);
    close_pair(p);
}

/* The single-threaded epoll loop: a listener, CLIENTS non-blocking clients, and the
 * server connections, all driven by one epoll instance. */
#define LOOP_CLIENTS 8
#define LOOP_BYTES (100 * 1024)
#define LOOP_CHUNK 8192

enum role { LISTENER, CLIENT, SERVER };

struct loop_conn {
    enum role role;
    int fd;
    unsigned seed;
    size_t sent, received, mismatches;
    unsigned char *pending; /* server: bytes read but not yet echoed */
    size_t pending_len;
    int connected, done;
};

/* One readiness event on a server connection of the epoll loop: echo what is readable;
 * if the peer is slow, hold the rest and wait for EPOLLOUT instead of reading more. */
static void serve_loop_conn(int ep, struct loop_conn *c)
{
    if (!c->pending_len) {
        long r = read(c->fd, c->pending, LOOP_CHUNK);
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0)
            goto finished;
        c->pending_len = (size_t)r;
    }
    long w = send(c->fd, c->pending, c->pending_len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN)
        goto finished;
    if (w > 0) {
        memmove(c->pending, c->pending + w, c->pending_len - (size_t)w);
        c->pending_len -= (size_t)w;
    }
    struct epoll_event ev = {.events = c->pending_len ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return;
finished:
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->done = 1;
}

static void epoll_loop_echo(void)
{
    printf("== single-threaded epoll echo\n");
    watchdog(120, "epoll echo loop");
    int ep = (int)need("epoll_create1", epoll_create1(EPOLL_CLOEXEC));
    static struct loop_conn conns[1 + 2 * LOOP_CLIENTS];
    int nconns = 0;
    struct loop_conn *listener = &conns[nconns++];
    *listener = (struct loop_conn){.role = LISTENER, .fd = tcp_listener(LOOP_CLIENTS, SOCK_NONBLOCK)};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = listener};
    need("epoll_ctl listener", epoll_ctl(ep, EPOLL_CTL_ADD, listener->fd, &ev));
    struct sockaddr_in to = local_addr(listener->fd);
    int inprogress = 0;
    for (int i = 0; i < LOOP_CLIENTS; i++) {
        struct loop_conn *c = &conns[nconns++];
        *c = (struct loop_conn){.role = CLIENT, .seed = 100u + (unsigned)i};
        c->fd = (int)need("socket", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
        if (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0 && errno == EINPROGRESS)
            inprogress++;
        ev = (struct epoll_event){.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        need("epoll_ctl client", epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev));
    }
    printf("non-blocking connects in progress: %d of %d\n", inprogress, LOOP_CLIENTS);
    unsigned char chunk[4096], in[LOOP_CHUNK];
    int clients_done = 0, accepted = 0, connect_errors = 0;
    while (clients_done < LOOP_CLIENTS) {
        struct epoll_event events[16];
        int n = epoll_wait(ep, events, 16, PEER_WAIT_MS);
        if (n <= 0) {
            printf("epoll_wait: %s\n", n == 0 ? "timed out" : net_errno_name(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct loop_conn *c = events[i].data.ptr;
            uint32_t e = events[i].events;
            if (c->role == LISTENER) {
                int fd;
                while ((fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct loop_conn *s = &conns[nconns++];
                    *s = (struct loop_conn){.role = SERVER, .fd = fd, .pending = malloc(LOOP_CHUNK)};
                    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = s};
                    need("epoll_ctl server", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
                    accepted++;
                }
            } else if (c->role == SERVER) {
                serve_loop_conn(ep, c);
            } else {
                if (!c->connected && (e & (EPOLLOUT | EPOLLERR))) {
                    if (get_int_option(c->fd, SOL_SOCKET, SO_ERROR) != 0)
                        connect_errors++;
                    c->connected = 1;
                }
                if ((e & EPOLLOUT) && c->sent < LOOP_BYTES) {
                    size_t len = LOOP_BYTES - c->sent < sizeof chunk ? LOOP_BYTES - c->sent : sizeof chunk;
                    fill_pattern(chunk, len, c->seed, c->sent);
                    long w = write(c->fd, chunk, len);
                    if (w > 0)
                        c->sent += (size_t)w;
                    if (c->sent == LOOP_BYTES) {
                        shutdown(c->fd, SHUT_WR);
                        ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = c};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    }
                }
                if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    long r;
                    while ((r = read(c->fd, in, sizeof in)) > 0) {
                        c->mismatches += pattern_mismatches(in, (size_t)r, c->seed, c->received);
                        c->received += (size_t)r;
                    }
                    if (r == 0 || (r < 0 && errno != EAGAIN)) {
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                        close(c->fd);
                        c->done = 1;
                        clients_done++;
                    }
                }
            }
        }
    }
    size_t total = 0, bad = 0;
    int complete = 1;
    for (int i = 0; i < nconns; i++) {
        if (conns[i].role == CLIENT) {
            total += conns[i].received;
            bad += conns[i].mismatches;
            complete &= conns[i].received == LOOP_BYTES;
        }
        if (conns[i].role == SERVER) {
            if (!conns[i].done)
                close(conns[i].fd);
            free(conns[i].pending);
        }
    }
    close(listener->fd);
    close(ep);
    printf("accepted %d, connect errors %d\n", accepted, connect_errors);
    printf("%d clients echoed %zu bytes in total\n", LOOP_CLIENTS, total);
    check("every client got all its bytes back", complete);
    check("every echoed byte matches", bad == 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);

    watchdog(WATCHDOG_SECS, "fresh socket");
    fresh_socket();
    connect_and_accept();
    peek_and_small_messages();
    half_close();
    peer_gone();
    resets();
    refused_and_in_use();
    nonblocking_connect();
    backlog();
    options();
    receive_timeout();
    threaded_echo();
    partial_writes();
    epoll_loop_echo();
    watchdog(0, NULL);
    printf("net_tcp: %s\n", checks_failed ? "some checks did not pass" : "done");
    return checks_failed ? 1 : 0;
}
