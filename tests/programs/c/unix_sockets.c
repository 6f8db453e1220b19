/* unix_sockets: AF_UNIX stream, datagram and seqpacket sockets.
 *
 * Creation errors, names (paths with the umask, relative paths, unlink and rebind,
 * abstract names, autobind), connect errors and the listen backlog, accept, data with
 * partial writes and peeking, shutdown, end of file, EPIPE/SIGPIPE and ECONNRESET,
 * datagram addressing, truncation, queue limits and the connect filter, seqpacket
 * records, SCM_RIGHTS and SCM_CREDENTIALS, socket options, ioctls, poll masks, epoll
 * edges, and blocking calls between threads.
 *
 * Every line is fixed: no pids, inode numbers or random names are printed (abstract
 * names include the pid at a fixed width; autobind names are checked for their form).
 * Exit status 1 if any check fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#ifndef SIOCOUTQ
#define SIOCOUTQ 0x5411
#endif
#ifndef SO_PROTOCOL
#define SO_PROTOCOL 38
#endif
#ifndef SO_DOMAIN
#define SO_DOMAIN 39
#endif

/* Errno names common.h does not know. */
static const char *err_name(int e) {
    switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EPROTOTYPE: return "EPROTOTYPE";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case ENOTCONN: return "ENOTCONN";
    case EISCONN: return "EISCONN";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTSOCK: return "ENOTSOCK";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return errno_name(e);
    }
}

/* "label: ok" / "label: <n>" or the errno name; counts a failure unless `want`
 * (0: success) matches. */
static long expect(const char *label, long rc, int want) {
    if (rc < 0) {
        printf("%s: %s\n", label, err_name(errno));
        if (errno != want)
            checks_failed++;
    } else {
        printf("%s: ok\n", label);
        if (want != 0)
            checks_failed++;
    }
    return rc;
}

static void show_count(const char *label, long rc) {
    if (rc < 0)
        printf("%s: %s\n", label, err_name(errno));
    else
        printf("%s: %ld\n", label, rc);
}

static short revents(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLPRI | POLLRDHUP | POLLRDNORM | POLLWRNORM | POLLWRBAND, 0};
    if (poll(&p, 1, 0) < 0)
        return -1;
    return p.revents;
}

static void show_poll(const char *label, int fd) {
    short r = revents(fd);
    printf("%s:", label);
    if (r & POLLIN) printf(" IN");
    if (r & POLLRDNORM) printf(" RDNORM");
    if (r & POLLOUT) printf(" OUT");
    if (r & POLLWRNORM) printf(" WRNORM");
    if (r & POLLWRBAND) printf(" WRBAND");
    if (r & POLLRDHUP) printf(" RDHUP");
    if (r & POLLHUP) printf(" HUP");
    if (r & POLLERR) printf(" ERR");
    if (!r) printf(" none");
    printf("\n");
}

static socklen_t path_addr(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strncpy(a->sun_path, path, sizeof a->sun_path - 1);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static char abstract_base[32];

/* An abstract name unique to this run: a fixed text and the pid at a fixed width. */
static socklen_t abstract_addr(struct sockaddr_un *a, const char *tag) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "%s-%s", abstract_base, tag);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int sock(int type) {
    int s = socket(AF_UNIX, type, 0);
    must("socket", s);
    return s;
}

static int getint(int fd, int name) {
    int v = -7;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, name, &v, &l) < 0)
        return -errno;
    return v;
}

static void creation(void) {
    expect("socket SOCK_STREAM protocol PF_UNIX", socket(AF_UNIX, SOCK_STREAM, PF_UNIX), 0);
    expect("socket SOCK_STREAM protocol 2", socket(AF_UNIX, SOCK_STREAM, 2), EPROTONOSUPPORT);
    expect("socket type 4", socket(AF_UNIX, 4, 0), ESOCKTNOSUPPORT);
    expect("socket SOCK_PACKET", socket(AF_UNIX, SOCK_PACKET, 0), ESOCKTNOSUPPORT);
    int raw = socket(AF_UNIX, SOCK_RAW, 0);
    expect("socket SOCK_RAW", raw, 0);
    printf("SOCK_RAW is type %d\n", getint(raw, SO_TYPE));
    close(raw);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct stat st;
    fstat(s, &st);
    printf("fstat: socket %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 07777);
    printf("flags: %#x cloexec %d\n", fcntl(s, F_GETFL), fcntl(s, F_GETFD));
    char link[64], path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", s);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n < 0 ? 0 : n] = 0;
    check("proc fd link is socket:[...]", strncmp(link, "socket:[", 8) == 0);
    printf("type %d domain %d protocol %d\n", getint(s, SO_TYPE), getint(s, SO_DOMAIN), getint(s, SO_PROTOCOL));
    show_poll("fresh stream", s);
    int d = sock(SOCK_DGRAM);
    show_poll("fresh dgram", d);
    int q = sock(SOCK_SEQPACKET);
    show_poll("fresh seqpacket", q);

    char buf[16];
    struct sockaddr_un a;
    socklen_t al = path_addr(&a, "nowhere");
    expect("recv unconnected stream", recv(s, buf, sizeof buf, 0), EINVAL);
    expect("send unconnected stream", send(s, "x", 1, 0), ENOTCONN);
    expect("sendto unconnected stream", sendto(s, "x", 1, 0, (struct sockaddr *)&a, al), EOPNOTSUPP);
    expect("listen unbound", listen(s, 5), EINVAL);
    expect("accept unconnected", accept(s, NULL, NULL), EINVAL);
    expect("listen dgram", listen(d, 5), EOPNOTSUPP);
    expect("accept dgram", accept(d, NULL, NULL), EOPNOTSUPP);
    expect("recv unconnected seqpacket", recv(q, buf, 1, MSG_DONTWAIT), ENOTCONN);
    expect("send unconnected dgram", send(d, "x", 1, 0), ENOTCONN);
    expect("recv empty dgram", recv(d, buf, 1, MSG_DONTWAIT), EAGAIN);
    expect("shutdown unconnected", shutdown(s, SHUT_RD), 0);
    show_poll("unconnected after SHUT_RD", s);
    expect("shutdown bad how", shutdown(s, 7), EINVAL);
    expect("getpeername unconnected", getpeername(s, (struct sockaddr *)&a, &al), ENOTCONN);
    int file = open("/proc/self/exe", O_RDONLY);
    expect("bind on a file", bind(file, (struct sockaddr *)&a, al), ENOTSOCK);
    close(file);
    close(s);
    close(d);
    close(q);
}

static void path_names(void) {
    umask(022);
    struct sockaddr_un a, got;
    socklen_t al = path_addr(&a, "srv"), gl;
    int l = sock(SOCK_STREAM);
    expect("bind srv", bind(l, (struct sockaddr *)&a, al), 0);
    struct stat st;
    stat("srv", &st);
    printf("srv: socket %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 07777);
    gl = sizeof got;
    getsockname(l, (struct sockaddr *)&got, &gl);
    printf("getsockname: len %u path %s\n", gl, got.sun_path);
    expect("bind srv again", bind(l, (struct sockaddr *)&a, al), EADDRINUSE);
    struct sockaddr_un other;
    socklen_t ol = path_addr(&other, "second");
    expect("bind a bound socket elsewhere", bind(l, (struct sockaddr *)&other, ol), EINVAL);
    check("nothing left at second", access("second", F_OK) < 0);
    int l2 = sock(SOCK_STREAM);
    expect("bind srv from another socket", bind(l2, (struct sockaddr *)&a, al), EADDRINUSE);
    ol = path_addr(&other, "missing/dir/s");
    expect("bind in a missing directory", bind(l2, (struct sockaddr *)&other, ol), ENOENT);
    close(open("plain", O_CREAT | O_WRONLY, 0644));
    ol = path_addr(&other, "plain");
    expect("bind on a regular file", bind(l2, (struct sockaddr *)&other, ol), EADDRINUSE);
    memset(&other, 0, sizeof other);
    other.sun_family = AF_INET;
    expect("bind AF_INET address", bind(l2, (struct sockaddr *)&other, 16), EINVAL);
    expect("bind 1-byte address", bind(l2, (struct sockaddr *)&other, 1), EINVAL);

    int c = sock(SOCK_STREAM);
    expect("connect to a bound, not listening socket", connect(c, (struct sockaddr *)&a, al), ECONNREFUSED);
    ol = path_addr(&other, "nothing-here");
    expect("connect to a missing path", connect(c, (struct sockaddr *)&other, ol), ENOENT);
    ol = path_addr(&other, "plain");
    expect("connect to a regular file", connect(c, (struct sockaddr *)&other, ol), ECONNREFUSED);
    memset(&other, 0, sizeof other);
    other.sun_family = AF_UNSPEC;
    expect("connect stream to AF_UNSPEC", connect(c, (struct sockaddr *)&other, sizeof other), EINVAL);

    expect("listen", listen(l, 1), 0);
    printf("SO_ACCEPTCONN: %d\n", getint(l, SO_ACCEPTCONN));
    show_poll("listener, nobody waiting", l);
    int dg = sock(SOCK_DGRAM);
    expect("dgram connect to a stream listener", connect(dg, (struct sockaddr *)&a, al), EPROTOTYPE);
    expect("dgram sendto a stream listener", sendto(dg, "x", 1, 0, (struct sockaddr *)&a, al), EPROTOTYPE);
    int sq = sock(SOCK_SEQPACKET);
    expect("seqpacket connect to a stream listener", connect(sq, (struct sockaddr *)&a, al), EPROTOTYPE);
    close(dg);
    close(sq);

    /* listen(1) admits two connections; the third would block. */
    int cs[3];
    for (int i = 0; i < 3; i++) {
        char label[32];
        cs[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        snprintf(label, sizeof label, "connect %d", i);
        expect(label, connect(cs[i], (struct sockaddr *)&a, al), i < 2 ? 0 : EAGAIN);
    }
    show_poll("connected client", cs[0]);
    show_poll("refused client", cs[2]);
    show_poll("listener with two waiting", l);
    expect("connect again, backlog full", connect(cs[0], (struct sockaddr *)&a, al), EAGAIN);
    expect("listen on a connected socket", listen(cs[0], 1), EINVAL);
    gl = sizeof got;
    getpeername(cs[0], (struct sockaddr *)&got, &gl);
    printf("client's peer: len %u path %s\n", gl, got.sun_path);
    gl = sizeof got;
    int a1 = accept(l, (struct sockaddr *)&got, &gl);
    expect("accept", a1, 0);
    printf("accepted peer address len %u\n", gl);
    expect("connect again, connected", connect(cs[0], (struct sockaddr *)&a, al), EISCONN);
    expect("connect a listener", connect(l, (struct sockaddr *)&a, al), EINVAL);
    gl = sizeof got;
    getsockname(a1, (struct sockaddr *)&got, &gl);
    printf("accepted socket's name: len %u path %s\n", gl, got.sun_path);
    gl = sizeof got;
    getpeername(a1, (struct sockaddr *)&got, &gl);
    printf("accepted socket's peer: len %u\n", gl);
    printf("accepted flags: %#x\n", fcntl(a1, F_GETFL));
    int a2 = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    printf("accept4 flags: %#x cloexec %d\n", fcntl(a2, F_GETFL), fcntl(a2, F_GETFD));
    fcntl(l, F_SETFL, O_NONBLOCK);
    expect("accept with nobody waiting", accept(l, NULL, NULL), EAGAIN);

    /* Unlinking the path leaves connections alone; the path can be bound again. */
    unlink("srv");
    expect("send after unlink", send(cs[0], "ok", 2, 0), 0);
    char buf[8];
    show_count("read after unlink", read(a1, buf, sizeof buf));
    int c2 = sock(SOCK_STREAM);
    expect("connect after unlink", connect(c2, (struct sockaddr *)&a, al), ENOENT);
    int l3 = sock(SOCK_STREAM);
    expect("bind srv anew", bind(l3, (struct sockaddr *)&a, al), 0);
    listen(l3, 5);
    expect("connect to the new srv", connect(c2, (struct sockaddr *)&a, al), 0);
    close(l3);
    int c3 = sock(SOCK_STREAM);
    expect("connect after the listener closed", connect(c3, (struct sockaddr *)&a, al), ECONNREFUSED);

    /* Relative paths resolve against the working directory of the call. */
    mkdir("sub", 0755);
    chdir("sub");
    int l4 = sock(SOCK_STREAM);
    al = path_addr(&a, "inner");
    expect("bind inner in sub", bind(l4, (struct sockaddr *)&a, al), 0);
    listen(l4, 5);
    chdir("..");
    int c4 = sock(SOCK_STREAM);
    expect("connect inner from the parent", connect(c4, (struct sockaddr *)&a, al), ENOENT);
    al = path_addr(&a, "sub/inner");
    expect("connect sub/inner", connect(c4, (struct sockaddr *)&a, al), 0);
    unlink("sub/inner");
    rmdir("sub");
    unlink("plain");
    unlink("srv");
    for (int i = 0; i < 3; i++)
        close(cs[i]);
    int fds[] = {l, l2, c, a1, a2, c2, c3, l4, c4};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

static void abstract_names(void) {
    struct sockaddr_un a, got;
    socklen_t al = abstract_addr(&a, "one"), gl;
    int s = sock(SOCK_DGRAM);
    expect("bind abstract", bind(s, (struct sockaddr *)&a, al), 0);
    gl = sizeof got;
    getsockname(s, (struct sockaddr *)&got, &gl);
    printf("abstract name: len %u leading NUL %d same %d\n", gl, got.sun_path[0] == 0,
           gl == al && memcmp(&got, &a, al) == 0);
    int t = sock(SOCK_DGRAM);
    expect("bind the same abstract name", bind(t, (struct sockaddr *)&a, al), EADDRINUSE);
    close(s);
    expect("bind it after the owner closed", bind(t, (struct sockaddr *)&a, al), 0);
    close(t);

    int u = sock(SOCK_DGRAM);
    struct sockaddr_un empty = {.sun_family = AF_UNIX};
    expect("autobind", bind(u, (struct sockaddr *)&empty, sizeof(sa_family_t)), 0);
    gl = sizeof got;
    getsockname(u, (struct sockaddr *)&got, &gl);
    int hex = 1;
    for (int i = 1; i <= 5; i++)
        hex &= (got.sun_path[i] >= '0' && got.sun_path[i] <= '9') || (got.sun_path[i] >= 'a' && got.sun_path[i] <= 'f');
    printf("autobind name: len %u leading NUL %d five hex digits %d\n", gl, got.sun_path[0] == 0, hex);
    struct sockaddr_un first = got;
    expect("autobind again keeps the name", bind(u, (struct sockaddr *)&empty, sizeof(sa_family_t)), 0);
    gl = sizeof got;
    getsockname(u, (struct sockaddr *)&got, &gl);
    check("autobind name unchanged", memcmp(&first, &got, 8) == 0);
    close(u);
}

static void stream_data(void) {
    int sv[2];
    must("socketpair", socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    show_poll("pair", sv[0]);
    char buf[64];
    send(sv[0], "hello", 5, 0);
    show_poll("pair with data", sv[1]);
    show_count("recv 2", recv(sv[1], buf, 2, 0));
    show_count("peek", recv(sv[1], buf, sizeof buf, MSG_PEEK));
    show_count("recv rest", recv(sv[1], buf, sizeof buf, 0));
    printf("rest: %.3s\n", buf);
    send(sv[0], "ab", 2, 0);
    send(sv[0], "cd", 2, 0);
    show_count("two writes, one read", read(sv[1], buf, sizeof buf));
    int v = 0;
    send(sv[0], "abc", 3, 0);
    send(sv[0], "de", 2, 0);
    ioctl(sv[1], FIONREAD, &v);
    printf("FIONREAD: %d\n", v);
    ioctl(sv[0], SIOCOUTQ, &v);
    printf("SIOCOUTQ: %d\n", v);
    recv(sv[1], buf, sizeof buf, 0);

    /* Shutdown both ways. */
    shutdown(sv[0], SHUT_WR);
    show_poll("reader after peer SHUT_WR", sv[1]);
    show_poll("writer after own SHUT_WR", sv[0]);
    show_count("read at end of file", read(sv[1], buf, sizeof buf));
    expect("send after SHUT_WR", send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
    show_count("reply still flows", send(sv[1], "back", 4, 0));
    show_count("reply read", recv(sv[0], buf, sizeof buf, 0));
    shutdown(sv[1], SHUT_RD);
    show_poll("after own SHUT_RD too", sv[1]);
    close(sv[0]);
    close(sv[1]);

    /* Closing with unread data resets the peer. */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    send(sv[0], "abc", 3, 0);
    close(sv[1]);
    show_poll("survivor, peer closed with unread data", sv[0]);
    printf("SO_ERROR: %s\n", err_name(getint(sv[0], SO_ERROR)));
    show_poll("after SO_ERROR", sv[0]);
    show_count("read", recv(sv[0], buf, sizeof buf, 0));
    close(sv[0]);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    send(sv[0], "abc", 3, 0);
    send(sv[1], "mine", 4, 0);
    close(sv[1]);
    show_count("survivor reads its data first", recv(sv[0], buf, sizeof buf, 0));
    show_count("then the reset", recv(sv[0], buf, sizeof buf, 0));
    show_count("then end of file", recv(sv[0], buf, sizeof buf, 0));
    close(sv[0]);

    /* EPIPE and SIGPIPE. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    close(sv[1]);
    expect("send MSG_NOSIGNAL to a closed peer", send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
    signal(SIGPIPE, SIG_IGN);
    expect("write with SIGPIPE ignored", write(sv[0], "x", 1), EPIPE);
    signal(SIGPIPE, SIG_DFL);
    close(sv[0]);

    /* Partial writes at the send buffer. */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    static char big[256 * 1024];
    show_count("256 KiB non-blocking write", write(sv[0], big, sizeof big));
    expect("then", write(sv[0], big, 1), EAGAIN);
    show_poll("full writer", sv[0]);
    long total = 0, n;
    while ((n = read(sv[1], big, sizeof big)) > 0)
        total += n;
    printf("drained %ld\n", total);
    show_poll("drained writer", sv[0]);
    int ones = 0;
    while (write(sv[0], "x", 1) == 1)
        ones++;
    printf("one-byte writes that fit: %d\n", ones);
    close(sv[0]);
    close(sv[1]);
}

static void datagrams(void) {
    struct sockaddr_un a, b, got;
    socklen_t al = path_addr(&a, "da"), bl = path_addr(&b, "db"), gl;
    int da = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int db = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int anon = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    bind(da, (struct sockaddr *)&a, al);
    bind(db, (struct sockaddr *)&b, bl);
    char buf[64];
    sendto(anon, "hello", 5, 0, (struct sockaddr *)&a, al);
    gl = sizeof got;
    show_count("recvfrom an unbound sender", recvfrom(da, buf, sizeof buf, 0, (struct sockaddr *)&got, &gl));
    printf("its address length: %u\n", gl);
    sendto(db, "hello", 5, 0, (struct sockaddr *)&a, al);
    gl = sizeof got;
    show_count("recvfrom 3 of 5", recvfrom(da, buf, 3, 0, (struct sockaddr *)&got, &gl));
    printf("from: len %u path %s\n", gl, got.sun_path);
    expect("the rest is gone", recv(da, buf, sizeof buf, 0), EAGAIN);
    sendto(db, "hello", 5, 0, (struct sockaddr *)&a, al);
    show_count("recv MSG_TRUNC into 2", recv(da, buf, 2, MSG_TRUNC));
    sendto(db, "hello", 5, 0, (struct sockaddr *)&a, al);
    struct iovec iov = {buf, 2};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    show_count("recvmsg into 2", recvmsg(da, &m, 0));
    printf("msg_flags: %#x\n", m.msg_flags);
    show_count("empty datagram sent", sendto(db, "", 0, 0, (struct sockaddr *)&a, al));
    show_poll("with an empty datagram", da);
    show_count("empty datagram read", recv(da, buf, sizeof buf, 0));

    int count = 0;
    while (sendto(anon, "x", 1, 0, (struct sockaddr *)&a, al) == 1)
        count++;
    printf("queued before EAGAIN: %d (%s)\n", count, err_name(errno));
    show_poll("unconnected sender", anon);
    connect(anon, (struct sockaddr *)&a, al);
    show_poll("sender connected to a full queue", anon);
    recv(da, buf, sizeof buf, 0);
    show_poll("after one was read", anon);
    while (recv(da, buf, sizeof buf, 0) >= 0) {
    }

    /* A connected datagram socket takes datagrams only from its peer. */
    connect(da, (struct sockaddr *)&b, bl);
    int c = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    expect("sendto a socket connected elsewhere", sendto(c, "x", 1, 0, (struct sockaddr *)&a, al), EPERM);
    expect("connect to a socket connected elsewhere", connect(c, (struct sockaddr *)&a, al), EPERM);
    expect("sendto from its peer", sendto(db, "x", 1, 0, (struct sockaddr *)&a, al), 0);
    show_count("send to the peer", send(da, "to-b", 4, 0));
    show_count("peer reads", recv(db, buf, sizeof buf, 0));
    close(db);
    expect("send after the peer closed", send(da, "x", 1, 0), ECONNREFUSED);
    expect("and again", send(da, "x", 1, 0), ENOTCONN);
    expect("sendto the closed socket's path", sendto(c, "x", 1, 0, (struct sockaddr *)&b, bl), ECONNREFUSED);
    struct sockaddr_un missing;
    socklen_t ml = path_addr(&missing, "no-such");
    expect("sendto a missing path", sendto(c, "x", 1, 0, (struct sockaddr *)&missing, ml), ENOENT);

    static char big[256 * 1024];
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    show_count("largest datagram", send(sv[0], big, 212992 - 32, MSG_DONTWAIT));
    expect("one byte more", send(sv[0], big, 212992 - 31, MSG_DONTWAIT), EMSGSIZE);
    close(sv[0]);
    close(sv[1]);
    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv);
    count = 0;
    while (send(sv[0], big, 4096, 0) == 4096)
        count++;
    printf("4 KiB datagrams in a pair: %d\n", count);
    close(sv[1]);
    expect("pair: send after the peer closed", send(sv[0], "x", 1, 0), ECONNREFUSED);
    close(sv[0]);

    /* A datagram socket may be its own peer. */
    int self = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un empty = {.sun_family = AF_UNIX};
    bind(self, (struct sockaddr *)&empty, sizeof(sa_family_t));
    gl = sizeof got;
    getsockname(self, (struct sockaddr *)&got, &gl);
    expect("connect to itself", connect(self, (struct sockaddr *)&got, gl), 0);
    show_count("send to itself", send(self, "self", 4, 0));
    show_count("read from itself", recv(self, buf, sizeof buf, 0));
    memset(&empty, 0, sizeof empty);
    empty.sun_family = AF_UNSPEC;
    expect("dissolve with AF_UNSPEC", connect(self, (struct sockaddr *)&empty, sizeof empty), 0);
    expect("send without a peer", send(self, "x", 1, 0), ENOTCONN);
    close(self);
    close(anon);
    close(c);
    close(da);
    unlink("da");
    unlink("db");
}

static void seqpacket(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv);
    char buf[16];
    send(sv[0], "abcdef", 6, 0);
    send(sv[0], "gh", 2, 0);
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    show_count("record read into 4", recvmsg(sv[1], &m, 0));
    printf("msg_flags: %#x\n", m.msg_flags);
    show_count("next record", recv(sv[1], buf, sizeof buf, 0));
    send(sv[0], "", 0, 0);
    show_count("empty record", recv(sv[1], buf, sizeof buf, 0));
    expect("nothing more", recv(sv[1], buf, sizeof buf, 0), EAGAIN);
    shutdown(sv[0], SHUT_WR);
    show_poll("seqpacket after peer SHUT_WR", sv[1]);
    show_count("end of file", recv(sv[1], buf, sizeof buf, 0));
    close(sv[0]);
    show_poll("seqpacket survivor", sv[1]);
    expect("send to a closed peer", send(sv[1], "x", 1, MSG_NOSIGNAL), EPIPE);
    close(sv[1]);

    struct sockaddr_un a;
    socklen_t al = path_addr(&a, "seq");
    int l = sock(SOCK_SEQPACKET);
    bind(l, (struct sockaddr *)&a, al);
    listen(l, 0);
    int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
    expect("seqpacket connect", connect(c, (struct sockaddr *)&a, al), 0);
    int c2 = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
    expect("second connect, backlog 0", connect(c2, (struct sockaddr *)&a, al), EAGAIN);
    send(c, "pre", 3, 0);
    int s = accept(l, NULL, NULL);
    show_count("data sent before accept", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    close(s);
    close(c);
    close(c2);
    close(l);
    unlink("seq");
}

static void send_fds(int s, const int *fds, int n, const char *data, size_t len) {
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {(void *)data, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    if (sendmsg(s, &m, 0) < 0)
        printf("sendmsg SCM_RIGHTS: %s\n", err_name(errno));
}

/* Receives into `buf`; returns the byte count and stores up to 4 received fds. */
static long recv_fds(int s, char *buf, size_t len, int flags, int *fds, int *nfds, int *creds_pid) {
    char cbuf[256];
    struct iovec iov = {buf, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    long r = recvmsg(s, &m, flags);
    *nfds = 0;
    if (creds_pid)
        *creds_pid = -1;
    if (r < 0)
        return r;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n && *nfds < 4; i++)
                memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && creds_pid) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof u);
            *creds_pid = u.pid == getpid() ? 1 : u.pid == 0 ? 0 : 2;
            printf("  credentials: pid %s uid %u gid %u\n", u.pid == getpid() ? "self" : u.pid == 0 ? "0" : "other",
                   u.uid, u.gid);
        }
    }
    return r;
}

static void rights_and_credentials(void) {
    int sv[2], p[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    must("pipe", pipe(p));
    char buf[32];
    int fds[4], n;
    send_fds(sv[0], &p[1], 1, "A", 1);
    close(p[1]);
    send(sv[0], "BC", 2, 0);
    long r = recv_fds(sv[1], buf, sizeof buf, MSG_PEEK, fds, &n, NULL);
    printf("peek: %ld bytes %d fds\n", r, n);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    show_poll("pipe read end while its write end is in flight", p[0]);
    r = recv_fds(sv[1], buf, sizeof buf, 0, fds, &n, NULL);
    printf("recv: %ld bytes [%.*s] %d fds\n", r, (int)r, buf, n);
    if (n == 1) {
        show_count("write through the received fd", write(fds[0], "via", 3));
        show_count("read it from the pipe", read(p[0], buf, sizeof buf));
        close(fds[0]);
    }
    show_poll("pipe read end after the last write end closed", p[0]);
    r = recv_fds(sv[1], buf, sizeof buf, 0, fds, &n, NULL);
    printf("recv after: %ld bytes %d fds\n", r, n);
    int closed = 99;
    send_fds(sv[0], &closed, 1, "x", 1);
    close(p[0]);

    /* Datagrams carry descriptors even with no data. */
    int d[2], q[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, d);
    pipe(q);
    send_fds(d[0], q, 2, "", 0);
    r = recv_fds(d[1], buf, sizeof buf, 0, fds, &n, NULL);
    printf("empty datagram: %ld bytes %d fds\n", r, n);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(q[0]);
    close(q[1]);

    /* Credentials. */
    send(d[0], "n", 1, 0);
    int on = 1, pid;
    setsockopt(d[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    printf("SO_PASSCRED: %d\n", getint(d[1], SO_PASSCRED));
    printf("sent before SO_PASSCRED:\n");
    recv_fds(d[1], buf, sizeof buf, 0, fds, &n, &pid);
    send(d[0], "c", 1, 0);
    printf("sent after:\n");
    recv_fds(d[1], buf, sizeof buf, 0, fds, &n, &pid);
    struct ucred u = {getpid(), 5, 6};
    char cbuf[CMSG_SPACE(sizeof u)];
    struct iovec iov = {"e", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof u);
    memcpy(CMSG_DATA(c), &u, sizeof u);
    expect("sendmsg explicit credentials", sendmsg(d[0], &m, 0), 0);
    printf("explicit:\n");
    recv_fds(d[1], buf, sizeof buf, 0, fds, &n, &pid);
    u.pid = 0x7ffffff0;
    memcpy(CMSG_DATA(c), &u, sizeof u);
    expect("sendmsg another pid", sendmsg(d[0], &m, 0), ESRCH);
    struct ucred peer;
    socklen_t pl = sizeof peer;
    getsockopt(d[0], SOL_SOCKET, SO_PEERCRED, &peer, &pl);
    printf("SO_PEERCRED of a pair: len %u pid %s uid %u gid %u\n", pl, peer.pid == getpid() ? "self" : "other",
           peer.uid, peer.gid);
    int lone = sock(SOCK_STREAM);
    pl = sizeof peer;
    getsockopt(lone, SOL_SOCKET, SO_PEERCRED, &peer, &pl);
    printf("SO_PEERCRED unconnected: pid %d uid %d gid %d\n", peer.pid, (int)peer.uid, (int)peer.gid);
    close(lone);
    close(d[0]);
    close(d[1]);

    /* SO_PASSCRED makes an unbound sender autobind. */
    int a = sock(SOCK_DGRAM);
    setsockopt(a, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    struct sockaddr_un got, to;
    socklen_t gl = sizeof got, tl = path_addr(&to, "pc");
    int b = sock(SOCK_DGRAM);
    bind(b, (struct sockaddr *)&to, tl);
    sendto(a, "z", 1, 0, (struct sockaddr *)&to, tl);
    getsockname(a, (struct sockaddr *)&got, &gl);
    printf("passcred sender's name length: %u\n", gl);
    close(a);
    close(b);
    unlink("pc");
    close(sv[0]);
    close(sv[1]);
}

static void options(void) {
    int s = sock(SOCK_STREAM);
    printf("SO_SNDBUF %d SO_RCVBUF %d\n", getint(s, SO_SNDBUF), getint(s, SO_RCVBUF));
    int v = 65536;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    printf("SO_SNDBUF after 65536: %d\n", getint(s, SO_SNDBUF));
    v = 1;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    printf("minimums: SO_SNDBUF %d SO_RCVBUF %d\n", getint(s, SO_SNDBUF), getint(s, SO_RCVBUF));
    expect("SO_SNDBUF with a short value", setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, 2), EINVAL);
    printf("SO_ERROR %d SO_ACCEPTCONN %d\n", getint(s, SO_ERROR), getint(s, SO_ACCEPTCONN));
    expect("unknown option", setsockopt(s, SOL_SOCKET, 9999, &v, sizeof v), ENOPROTOOPT);
    expect("TCP option on a unix socket", setsockopt(s, IPPROTO_TCP, 1, &v, sizeof v), EOPNOTSUPP);
    socklen_t l = sizeof v;
    expect("getsockopt TCP option", getsockopt(s, IPPROTO_TCP, 1, &v, &l), EOPNOTSUPP);
    close(s);
    /* A smaller send buffer holds fewer datagrams. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv);
    v = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    int n = 0;
    while (send(sv[0], "x", 1, 0) == 1)
        n++;
    printf("1-byte datagrams in an 8 KiB send buffer: %d\n", n);
    close(sv[0]);
    close(sv[1]);
}

static void epoll_edges(void) {
    struct sockaddr_un a;
    socklen_t al = path_addr(&a, "ep");
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    bind(l, (struct sockaddr *)&a, al);
    listen(l, 8);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 1}, out[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    printf("epoll idle listener: %d\n", epoll_wait(ep, out, 4, 0));
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(c, (struct sockaddr *)&a, al);
    int n = epoll_wait(ep, out, 4, 0);
    printf("epoll after connect: %d data %llu\n", n, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
    printf("epoll no new edge: %d\n", epoll_wait(ep, out, 4, 0));
    int s = accept(l, NULL, NULL);
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    send(c, "a", 1, 0);
    n = epoll_wait(ep, out, 4, 0);
    printf("epoll data: %d data %llu events %#x\n", n, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL,
           n > 0 ? out[0].events : 0);
    send(c, "b", 1, 0);
    printf("epoll more data, new edge: %d\n", epoll_wait(ep, out, 4, 0));
    shutdown(c, SHUT_WR);
    n = epoll_wait(ep, out, 4, 0);
    printf("epoll peer shutdown: %d events %#x\n", n, n > 0 ? out[0].events : 0);
    close(ep);
    close(s);
    close(c);
    close(l);
    unlink("ep");
}

/* ---- blocking calls between threads ---- */

static struct sockaddr_un echo_addr;
static socklen_t echo_len;
static int echo_listener;

static void *echo_server(void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int s = accept(echo_listener, NULL, NULL);
        if (s < 0)
            return NULL;
        char buf[256];
        ssize_t n;
        while ((n = read(s, buf, sizeof buf)) > 0)
            write(s, buf, (size_t)n);
        close(s);
    }
    return NULL;
}

static void *slow_writer(void *arg) {
    int fd = *(int *)arg;
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    write(fd, "late", 4);
    return NULL;
}

static void blocking(void) {
    watchdog(30, "blocking unix socket calls");
    echo_len = path_addr(&echo_addr, "echo");
    echo_listener = sock(SOCK_STREAM);
    bind(echo_listener, (struct sockaddr *)&echo_addr, echo_len);
    listen(echo_listener, 4);
    pthread_t th;
    pthread_create(&th, NULL, echo_server, NULL);
    for (int i = 0; i < 2; i++) {
        int c = sock(SOCK_STREAM);
        expect("blocking connect to the echo server", connect(c, (struct sockaddr *)&echo_addr, echo_len), 0);
        char msg[200], back[200];
        memset(msg, 'a' + i, sizeof msg);
        write(c, msg, sizeof msg);
        size_t got = 0;
        while (got < sizeof back) {
            ssize_t n = read(c, back + got, sizeof back - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        check("echoed", got == sizeof back && memcmp(msg, back, sizeof msg) == 0);
        shutdown(c, SHUT_WR);
        show_count("end of file after the echo", read(c, back, sizeof back));
        close(c);
    }
    pthread_join(th, NULL);
    close(echo_listener);
    unlink("echo");

    /* A blocking read waits for a writer in another thread. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    pthread_create(&th, NULL, slow_writer, &sv[0]);
    char buf[16];
    show_count("blocking seqpacket read", read(sv[1], buf, sizeof buf));
    pthread_join(th, NULL);
    close(sv[0]);
    close(sv[1]);
    watchdog(0, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(abstract_base, sizeof abstract_base, "skiff-unix-%010d", (int)getpid());
    char dir[] = "/tmp/skiff-unix-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("FATAL mkdtemp: %s\n", errno_name(errno));
        return 99;
    }
    must("chdir", chdir(dir));
    creation();
    path_names();
    abstract_names();
    stream_data();
    datagrams();
    seqpacket();
    rights_and_credentials();
    options();
    epoll_edges();
    blocking();
    chdir("/");
    if (rmdir(dir) < 0)
        printf("rmdir %s\n", errno_name(errno));
    printf("unix_sockets: %s\n", checks_failed ? "FAILED" : "done");
    return checks_failed ? 1 : 0;
}
