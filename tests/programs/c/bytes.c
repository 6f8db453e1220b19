/*
 * bytes: writes all 256 byte values, four times over, to stdout with raw write(2), so the
 * harness can check that the console path is binary-safe (NUL, 0xff, CR, LF, escapes).
 */
#include <unistd.h>

int main(void)
{
    unsigned char block[256 * 4];
    for (int i = 0; i < (int)sizeof block; i++)
        block[i] = (unsigned char)(i % 256);
    size_t done = 0;
    while (done < sizeof block) {
        ssize_t n = write(1, block + done, sizeof block - done);
        if (n <= 0)
            return 1;
        done += (size_t)n;
    }
    return 0;
}
