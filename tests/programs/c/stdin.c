/*
 * stdin: reads standard input to end of file and prints the byte count, the number of
 * newlines and a 64-bit FNV-1a checksum, so large binary inputs compare in one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "common.h"

int main(void)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    unsigned long long total = 0, newlines = 0;
    unsigned char buf[4096];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) {
            printf("read failed: %s\n", errno_name(errno));
            return 1;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            hash = (hash ^ buf[i]) * 0x100000001b3ull;
            if (buf[i] == '\n')
                newlines++;
        }
        total += (unsigned long long)n;
    }
    printf("bytes: %llu\n", total);
    printf("newlines: %llu\n", newlines);
    printf("fnv1a64: %016llx\n", (unsigned long long)hash);
    return 0;
}
