/*
 * net_send_and_exit ADDR PORT BYTES: connects to ADDR:PORT over TCP with a 1 MiB send
 * buffer, writes BYTES bytes of pattern_byte(1, offset), closes the socket, prints
 * "sent BYTES" and exits at once. The last writes return as soon as their bytes are in
 * the send buffer, so up to a buffer's worth is still queued at exit. Whatever is still queued at exit must reach the peer, as on Linux, whose
 * kernel goes on delivering after the process is gone. The host side of
 * tests/tests/network.rs counts and checks the bytes.
 */
#define _GNU_SOURCE
#include "net_common.h"

#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: net_send_and_exit ADDR PORT BYTES\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "net_send_and_exit: bad address %s\n", argv[1]);
        return 2;
    }
    size_t total = (size_t)strtoull(argv[3], NULL, 10);
    int fd = (int)need("socket", socket(AF_INET, SOCK_STREAM, 0));
    int sndbuf = 1 << 20;
    need("SO_SNDBUF", setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf));
    need("connect", connect(fd, (struct sockaddr *)&addr, sizeof addr));
    unsigned char buf[16384];
    for (size_t done = 0; done < total;) {
        size_t n = total - done < sizeof buf ? total - done : sizeof buf;
        fill_pattern(buf, n, 1, done);
        need("write", write_all(fd, buf, n));
        done += n;
    }
    need("close", close(fd));
    printf("sent %zu\n", total);
    return 0;
}
