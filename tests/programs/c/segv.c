/*
 * segv: stores through a NULL pointer and must die with SIGSEGV (exit status 139 from
 * Skiff). The pointer lives in a volatile variable so the compiler cannot turn the store
 * into a trap instruction (which would raise SIGILL instead), and the store itself is
 * volatile so it cannot be dropped as dead.
 */
#include <stdio.h>

int main(void)
{
    volatile int *volatile target = NULL;
    printf("about to store through NULL\n");
    fflush(stdout);
    *target = 42;
    printf("still alive: the store did not fault\n");
    return 0;
}
