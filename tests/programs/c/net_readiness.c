/*
 * net_readiness: poll, ppoll, select, pselect6 and epoll over a mix of pipes, an
 * eventfd and TCP sockets (a connection and a listener), and a server loop that
 * serves several loopback clients with edge-triggered non-blocking I/O.
 *
 * Readiness is reported per descriptor by name ("pipe-r: IN"), epoll events sorted by
 * their data so the order in which the kernel queued them does not matter. Every line
 * is fixed. Exit status 1 if any check fails.
 */
#define _GNU_SOURCE
#include "net_common.h"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WATCHDOG_SECS 30

/* The descriptors every section works with. */
enum { PIPE_R, PIPE_W, EVENT, CONN, PEER, LISTENER, NFDS };
static const char *const names[NFDS] = {"pipe-r", "pipe-w", "eventfd", "conn", "peer", "listener"};
static int fds[NFDS];
/* A client that connects to the listener, making it readable. */
static int pending_client = -1;

static void open_all(void)
{
    int p[2];
    need("pipe2", pipe2(p, O_NONBLOCK | O_CLOEXEC));
    fds[PIPE_R] = p[0];
    fds[PIPE_W] = p[1];
    fds[EVENT] = (int)need("eventfd", eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    fds[LISTENER] = tcp_listener(4, SOCK_NONBLOCK);
    fds[CONN] = tcp_connect(local_port(fds[LISTENER]));
    fds[PEER] = tcp_accept(fds[LISTENER]);
}

static void close_all(void)
{
    for (int i = 0; i < NFDS; i++)
        close(fds[i]);
    if (pending_client >= 0)
        close(pending_client);
    pending_client = -1;
}

/* Makes each descriptor readable: data in the pipe, an eventfd count, bytes from the
 * peer, a pending connection on the listener. Waits until the socket ones show it. */
static void make_readable(void)
{
    need("pipe write", write(fds[PIPE_W], "p", 1));
    uint64_t one = 1;
    need("eventfd write", write(fds[EVENT], &one, sizeof one));
    need("peer send", send(fds[PEER], "data", 4, 0));
    pending_client = tcp_connect(local_port(fds[LISTENER]));
    wait_for(fds[CONN], POLLIN);
    wait_for(fds[LISTENER], POLLIN);
}

/* Undoes make_readable(). */
static void drain_all(void)
{
    char buf[64];
    while (read(fds[PIPE_R], buf, sizeof buf) > 0) {
    }
    uint64_t v;
    (void)!read(fds[EVENT], &v, sizeof v);
    while (recv(fds[CONN], buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    int fd;
    while ((fd = accept(fds[LISTENER], NULL, NULL)) >= 0)
        close(fd);
    if (pending_client >= 0)
        close(pending_client);
    pending_client = -1;
}

/* Waits until at least `n` bytes are queued for reading on `fd` (FIONREAD); for
 * checks that need more data to have arrived on a socket that is already readable. */
static void wait_for_bytes(int fd, int n)
{
    for (int waited = 0; waited < PEER_WAIT_MS; waited++) {
        int queued = 0;
        if (ioctl(fd, FIONREAD, &queued) < 0 || queued >= n)
            return;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static void show_pollfds(const char *label, int rc, struct pollfd *p, int n)
{
    printf("%s: %d\n", label, rc);
    for (int i = 0; i < n; i++) {
        const char *name = "?";
        for (int j = 0; j < NFDS; j++)
            if (fds[j] == p[i].fd)
                name = names[j];
        if (p[i].fd < 0)
            name = "negative fd";
        printf("  %s: %s\n", name, poll_mask_text(p[i].revents));
    }
}

static int fill_pollfds(struct pollfd *p, short events)
{
    for (int i = 0; i < NFDS; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = events};
    return NFDS;
}

static volatile sig_atomic_t usr1_handled;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_handled++;
}

static void block_usr1(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static int usr1_blocked(void)
{
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, SIGUSR1);
}

static int usr1_pending(void)
{
    sigset_t set;
    sigpending(&set);
    return sigismember(&set, SIGUSR1);
}

/* Lets a pending, blocked SIGUSR1 run its handler. */
static void deliver_pending_usr1(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static void poll_section(void)
{
    printf("== poll\n");
    watchdog(WATCHDOG_SECS, "poll");
    open_all();
    struct pollfd p[NFDS + 2];
    int n = fill_pollfds(p, POLLIN | POLLOUT);
    show_pollfds("idle", poll(p, n, 0), p, n);
    make_readable();
    n = fill_pollfds(p, POLLIN | POLLOUT);
    show_pollfds("readable", poll(p, n, 0), p, n);
    n = fill_pollfds(p, POLLIN);
    show_pollfds("asking for POLLIN only", poll(p, n, 0), p, n);
    drain_all();

    /* A closed descriptor is POLLNVAL; a negative one is skipped. */
    int spare = dup(fds[PIPE_R]);
    close(spare);
    p[0] = (struct pollfd){.fd = spare, .events = POLLIN};
    p[1] = (struct pollfd){.fd = -1, .events = POLLIN};
    p[2] = (struct pollfd){.fd = fds[PIPE_W], .events = POLLOUT};
    int rc = poll(p, 3, 0);
    printf("closed, negative, writable: %d\n", rc);
    printf("  closed: %s\n", poll_mask_text(p[0].revents));
    printf("  negative: %s\n", poll_mask_text(p[1].revents));
    printf("  writable: %s\n", poll_mask_text(p[2].revents));

    /* Nothing ready: a timeout returns 0; a blocked poll wakes when data arrives. */
    p[0] = (struct pollfd){.fd = fds[CONN], .events = POLLIN};
    printf("poll with a 50 ms timeout and nothing ready: %d\n", poll(p, 1, 50));
    expect_net("poll with a bad pointer", syscall(SYS_poll, 8L, 1L, 0L), EFAULT);

    /* Peer hangs up: the write end of the pipe closes, the TCP peer closes. */
    close(fds[PIPE_W]);
    fds[PIPE_W] = (int)need("eventfd placeholder", eventfd(0, EFD_CLOEXEC));
    close(fds[PEER]);
    fds[PEER] = (int)need("eventfd placeholder", eventfd(0, EFD_CLOEXEC));
    wait_for(fds[CONN], POLLRDHUP);
    struct pollfd hup[2] = {{.fd = fds[PIPE_R], .events = POLLIN | POLLRDHUP},
                            {.fd = fds[CONN], .events = POLLIN | POLLOUT | POLLRDHUP}};
    rc = poll(hup, 2, 0);
    printf("after the writers closed: %d\n", rc);
    printf("  pipe-r: %s\n", poll_mask_text(hup[0].revents));
    printf("  conn: %s\n", poll_mask_text(hup[1].revents));
    close_all();
}

static void ppoll_section(void)
{
    printf("== ppoll\n");
    watchdog(WATCHDOG_SECS, "ppoll");
    open_all();
    struct timespec zero = {0, 0};
    struct pollfd p[NFDS];
    int n = fill_pollfds(p, POLLIN);
    printf("ppoll with a zero timeout and nothing readable: %d\n", ppoll(p, n, &zero, NULL));
    struct timespec short_wait = {0, 30 * 1000 * 1000};
    n = fill_pollfds(p, POLLIN);
    printf("ppoll with a 30 ms timeout: %d\n", ppoll(p, n, &short_wait, NULL));

    /* A pending SIGUSR1, blocked outside the call and unblocked by ppoll's mask. */
    block_usr1();
    usr1_handled = 0;
    raise(SIGUSR1);
    sigset_t during;
    sigprocmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, SIGUSR1);
    n = fill_pollfds(p, POLLIN);
    struct timespec long_wait = {PEER_WAIT_MS / 1000, 0};
    expect_net("ppoll unblocking a pending signal", ppoll(p, n, &long_wait, &during), EINTR);
    printf("handler ran: %d\n", (int)usr1_handled);
    check("SIGUSR1 is blocked again", usr1_blocked());

    /* With a descriptor ready, ppoll reports it and the signal stays pending. */
    make_readable();
    usr1_handled = 0;
    raise(SIGUSR1);
    n = fill_pollfds(p, POLLIN);
    int rc = ppoll(p, n, &long_wait, &during);
    printf("ppoll with ready descriptors and a pending signal: %d, handler ran: %d\n", rc, (int)usr1_handled);
    check("the signal is still pending", usr1_pending());
    deliver_pending_usr1();
    printf("handler ran once unblocked: %d\n", (int)usr1_handled);
    drain_all();

    struct timespec bad = {0, 1000000000};
    n = fill_pollfds(p, POLLIN);
    expect_net("ppoll with tv_nsec 1000000000", ppoll(p, n, &bad, NULL), EINVAL);
    close_all();
}

static void show_sets(const char *label, int rc, fd_set *r, fd_set *w, fd_set *x)
{
    printf("%s: %d\n", label, rc);
    for (int i = 0; i < NFDS; i++) {
        int in_r = r && FD_ISSET(fds[i], r), in_w = w && FD_ISSET(fds[i], w), in_x = x && FD_ISSET(fds[i], x);
        printf("  %s:%s%s%s%s\n", names[i], in_r ? " read" : "", in_w ? " write" : "", in_x ? " except" : "",
               in_r || in_w || in_x ? "" : " -");
    }
}

static int fill_sets(fd_set *r, fd_set *w, fd_set *x)
{
    int max = -1;
    FD_ZERO(r);
    FD_ZERO(w);
    FD_ZERO(x);
    for (int i = 0; i < NFDS; i++) {
        FD_SET(fds[i], r);
        FD_SET(fds[i], w);
        FD_SET(fds[i], x);
        if (fds[i] > max)
            max = fds[i];
    }
    return max + 1;
}

static void select_section(void)
{
    printf("== select and pselect6\n");
    watchdog(WATCHDOG_SECS, "select");
    open_all();
    fd_set r, w, x;
    struct timeval tv = {0, 0};
    int nfds = fill_sets(&r, &w, &x);
    show_sets("select idle", select(nfds, &r, &w, &x, &tv), &r, &w, &x);
    make_readable();
    nfds = fill_sets(&r, &w, &x);
    tv = (struct timeval){0, 0};
    show_sets("select readable", select(nfds, &r, &w, &x, &tv), &r, &w, &x);
    nfds = fill_sets(&r, &w, &x);
    /* The kernel writes the time left back (musl's select() hides that, so the raw
     * syscall). */
    tv = (struct timeval){5, 0};
    int rc = (int)syscall(SYS_select, nfds, &r, NULL, NULL, &tv);
    show_sets("select for reading with time to spare", rc, &r, NULL, NULL);
    check("select left time on the clock", tv.tv_sec > 0 || tv.tv_usec > 0);
    drain_all();

    FD_ZERO(&r);
    FD_SET(fds[CONN], &r);
    tv = (struct timeval){0, 40000};
    printf("select with a 40 ms timeout and nothing ready: %d\n",
           (int)syscall(SYS_select, fds[CONN] + 1, &r, NULL, NULL, &tv));
    check("the timeout was used up", tv.tv_sec == 0 && tv.tv_usec == 0);
    check("and the set was cleared", !FD_ISSET(fds[CONN], &r));

    int spare = dup(fds[PIPE_R]);
    close(spare);
    FD_ZERO(&r);
    FD_SET(spare, &r);
    tv = (struct timeval){0, 0};
    expect_net("select on a closed descriptor", select(spare + 1, &r, NULL, NULL, &tv), EBADF);
    expect_net("select with nfds -1", select(-1, NULL, NULL, NULL, &tv), EINVAL);
    tv = (struct timeval){0, -1};
    expect_net("select with a negative timeout", select(0, NULL, NULL, NULL, &tv), EINVAL);

    /* pselect6: the same signal handling as ppoll. */
    block_usr1();
    usr1_handled = 0;
    raise(SIGUSR1);
    sigset_t during;
    sigprocmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, SIGUSR1);
    nfds = fill_sets(&r, &w, &x);
    struct timespec ts = {PEER_WAIT_MS / 1000, 0};
    expect_net("pselect unblocking a pending signal", pselect(nfds, &r, NULL, NULL, &ts, &during), EINTR);
    printf("handler ran: %d\n", (int)usr1_handled);
    check("SIGUSR1 is blocked again", usr1_blocked());
    make_readable();
    nfds = fill_sets(&r, &w, &x);
    ts = (struct timespec){0, 0};
    show_sets("pselect readable", pselect(nfds, &r, NULL, NULL, &ts, NULL), &r, NULL, NULL);
    drain_all();

    /* The raw syscall: the sixth argument points at {sigset pointer, size}. */
    struct {
        const sigset_t *set;
        size_t size;
    } mask_arg = {&during, 8};
    usr1_handled = 0;
    raise(SIGUSR1);
    nfds = fill_sets(&r, &w, &x);
    ts = (struct timespec){PEER_WAIT_MS / 1000, 0};
    long raw = syscall(SYS_pselect6, nfds, &r, NULL, NULL, &ts, &mask_arg);
    expect_net("raw pselect6 unblocking a pending signal", raw, EINTR);
    printf("handler ran: %d\n", (int)usr1_handled);
    mask_arg.size = 4;
    nfds = fill_sets(&r, &w, &x);
    expect_net("raw pselect6 with a 4-byte sigset", syscall(SYS_pselect6, nfds, &r, NULL, NULL, &ts, &mask_arg),
               EINVAL);
    close_all();
}

/* epoll_wait with the events sorted by data, printed by descriptor name. */
static int show_epoll(int ep, const char *label, int timeout)
{
    struct epoll_event ev[NFDS * 2];
    int n = epoll_wait(ep, ev, NFDS * 2, timeout);
    if (n < 0) {
        printf("%s: %s\n", label, net_errno_name(errno));
        return n;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ev[j - 1].data.u64 > ev[j].data.u64; j--) {
            struct epoll_event t = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = t;
        }
    printf("%s: %d", label, n);
    for (int i = 0; i < n; i++) {
        uint32_t e = ev[i].events;
        printf(" [%s", ev[i].data.u64 < NFDS ? names[ev[i].data.u64] : "?");
        if (e & EPOLLIN) printf(" IN");
        if (e & EPOLLOUT) printf(" OUT");
        if (e & EPOLLERR) printf(" ERR");
        if (e & EPOLLHUP) printf(" HUP");
        if (e & EPOLLRDHUP) printf(" RDHUP");
        if (e & ~(uint32_t)(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            printf(" other=%#x", e);
        printf("]");
    }
    printf("\n");
    return n;
}

static void watch(int ep, int op, int which, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)which};
    need("epoll_ctl", epoll_ctl(ep, op, fds[which], &ev));
}

static void epoll_section(void)
{
    printf("== epoll\n");
    watchdog(WATCHDOG_SECS, "epoll");
    open_all();
    int ep = (int)need("epoll_create1", epoll_create1(EPOLL_CLOEXEC));

    /* Level-triggered over the mix. */
    for (int i = 0; i < NFDS; i++)
        if (i != PIPE_W)
            watch(ep, EPOLL_CTL_ADD, i, EPOLLIN);
    show_epoll(ep, "level, idle", 0);
    make_readable();
    show_epoll(ep, "level, readable", 0);
    show_epoll(ep, "level, still readable", 0);
    drain_all();
    show_epoll(ep, "level, drained", 0);

    /* Edge-triggered: one report per arrival. */
    for (int i = 0; i < NFDS; i++)
        if (i != PIPE_W)
            watch(ep, EPOLL_CTL_MOD, i, EPOLLIN | EPOLLET);
    make_readable();
    show_epoll(ep, "edge, readable", 0);
    show_epoll(ep, "edge, no new arrival", 0);
    need("peer send", send(fds[PEER], "more", 4, 0));
    need("pipe write", write(fds[PIPE_W], "q", 1));
    wait_for_bytes(fds[CONN], 8);
    show_epoll(ep, "edge, more data without draining", 0);
    drain_all();

    /* One-shot: reported once, then disarmed until EPOLL_CTL_MOD. */
    watch(ep, EPOLL_CTL_MOD, CONN, EPOLLIN | EPOLLONESHOT);
    need("peer send", send(fds[PEER], "one", 3, 0));
    wait_for(fds[CONN], POLLIN);
    show_epoll(ep, "oneshot, first", 0);
    need("peer send", send(fds[PEER], "two", 3, 0));
    show_epoll(ep, "oneshot, disarmed", 0);
    watch(ep, EPOLL_CTL_MOD, CONN, EPOLLIN | EPOLLONESHOT);
    show_epoll(ep, "oneshot, rearmed", 0);
    drain_all();

    /* Peer half-close and close: EPOLLRDHUP, then HUP once both directions are shut. */
    watch(ep, EPOLL_CTL_MOD, CONN, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
    show_epoll(ep, "connection, idle", 0);
    need("peer shutdown", shutdown(fds[PEER], SHUT_WR));
    wait_for(fds[CONN], POLLRDHUP);
    show_epoll(ep, "after the peer's SHUT_WR", 0);
    need("shutdown", shutdown(fds[CONN], SHUT_WR));
    wait_for(fds[PEER], POLLRDHUP);
    show_epoll(ep, "after both SHUT_WR", 0);

    /* A blocking epoll_wait woken by another thread's write. */
    watch(ep, EPOLL_CTL_DEL, CONN, 0);
    watch(ep, EPOLL_CTL_MOD, EVENT, EPOLLIN);
    show_epoll(ep, "before the wake-up", 0);
    uint64_t one = 1;
    need("eventfd write", write(fds[EVENT], &one, sizeof one));
    show_epoll(ep, "blocking wait", PEER_WAIT_MS);
    drain_all();

    struct epoll_event ev = {.events = EPOLLIN};
    expect_net("EPOLL_CTL_ADD twice", epoll_ctl(ep, EPOLL_CTL_ADD, fds[EVENT], &ev), EEXIST);
    expect_net("EPOLL_CTL_MOD of an unwatched socket", epoll_ctl(ep, EPOLL_CTL_MOD, fds[CONN], &ev), ENOENT);
    expect_net("epoll_wait with maxevents 0", epoll_wait(ep, &ev, 0, 0), EINVAL);
    close(ep);
    close_all();
}

/* The edge-triggered server: clients in threads, the server loop in the main thread. */
#define ET_CLIENTS 6
#define ET_BYTES (256 * 1024)

struct et_client {
    uint16_t port;
    unsigned seed;
    size_t received, mismatches;
    int ok;
};

static void *et_client_main(void *arg)
{
    struct et_client *c = arg;
    int fd = tcp_connect(c->port);
    unsigned char *buf = malloc(ET_BYTES);
    fill_pattern(buf, ET_BYTES, c->seed, 0);
    /* Send in pieces so the server sees several edges per connection. */
    for (size_t off = 0; off < ET_BYTES; off += 16384)
        write_all(fd, buf + off, ET_BYTES - off < 16384 ? ET_BYTES - off : 16384);
    shutdown(fd, SHUT_WR);
    long n;
    while ((n = read(fd, buf, ET_BYTES)) > 0) {
        c->mismatches += pattern_mismatches(buf, (size_t)n, c->seed, c->received);
        c->received += (size_t)n;
    }
    c->ok = n == 0;
    free(buf);
    close(fd);
    return NULL;
}

struct et_conn {
    int fd;
    unsigned char *buf; /* read but not yet echoed */
    size_t len;
    int eof;
};

/* Reads and echoes until the socket says EAGAIN in whichever direction blocks.
 * Returns 1 once the connection is finished. */
static int et_serve(struct et_conn *c)
{
    for (;;) {
        while (c->len > 0) {
            long w = send(c->fd, c->buf, c->len, MSG_NOSIGNAL);
            if (w < 0)
                return errno == EAGAIN ? 0 : 1;
            memmove(c->buf, c->buf + w, c->len - (size_t)w);
            c->len -= (size_t)w;
        }
        if (c->eof)
            return 1;
        long r = read(c->fd, c->buf, 65536);
        if (r < 0)
            return errno == EAGAIN ? 0 : 1;
        if (r == 0)
            c->eof = 1;
        c->len = (size_t)(r > 0 ? r : 0);
    }
}

static void edge_triggered_server(void)
{
    printf("== edge-triggered server loop\n");
    watchdog(120, "edge-triggered server loop");
    int listener = tcp_listener(ET_CLIENTS, SOCK_NONBLOCK);
    int ep = (int)need("epoll_create1", epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    need("epoll_ctl listener", epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev));
    struct et_client clients[ET_CLIENTS];
    pthread_t threads[ET_CLIENTS];
    for (int i = 0; i < ET_CLIENTS; i++) {
        clients[i] = (struct et_client){.port = local_port(listener), .seed = 40u + (unsigned)i};
        pthread_create(&threads[i], NULL, et_client_main, &clients[i]);
    }
    struct et_conn conns[ET_CLIENTS];
    int accepted = 0, finished = 0, wakeups = 0, spurious_accepts = 0;
    while (finished < ET_CLIENTS) {
        struct epoll_event events[8];
        int n = epoll_wait(ep, events, 8, PEER_WAIT_MS);
        if (n <= 0) {
            printf("epoll_wait: %s\n", n == 0 ? "timed out" : net_errno_name(errno));
            break;
        }
        wakeups++;
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) {
                /* Edge-triggered listener: accept until EAGAIN or a connection is lost. */
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (accepted == ET_CLIENTS) {
                        spurious_accepts++;
                        close(fd);
                        continue;
                    }
                    struct et_conn *c = &conns[accepted++];
                    *c = (struct et_conn){.fd = fd, .buf = malloc(65536)};
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
                    need("epoll_ctl conn", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev));
                }
                continue;
            }
            struct et_conn *c = events[i].data.ptr;
            if (c->fd >= 0 && et_serve(c)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                finished++;
            }
        }
    }
    size_t total = 0, bad = 0;
    int all_ok = 1;
    for (int i = 0; i < ET_CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        total += clients[i].received;
        bad += clients[i].mismatches;
        all_ok &= clients[i].ok && clients[i].received == ET_BYTES;
    }
    for (int i = 0; i < accepted; i++)
        free(conns[i].buf);
    printf("accepted %d, finished %d, unexpected connections %d\n", accepted, finished, spurious_accepts);
    printf("%d clients echoed %zu bytes in total\n", ET_CLIENTS, total);
    check("every client got all its bytes back", all_ok);
    check("every echoed byte matches", bad == 0);
    check("the loop slept in epoll_wait", wakeups > 0);
    close(ep);
    close(listener);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    poll_section();
    ppoll_section();
    select_section();
    epoll_section();
    edge_triggered_server();
    watchdog(0, NULL);
    printf("net_readiness: %s\n", checks_failed ? "some checks did not pass" : "done");
    return checks_failed ? 1 : 0;
}
