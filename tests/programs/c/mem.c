/*
 * mem: memory management — malloc (small and large), anonymous mmap, munmap, mprotect,
 * mremap growth, and brk. Prints only booleans and sizes, never addresses.
 */
#define _GNU_SOURCE
#include "common.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096ul

static int filled_with(const unsigned char *p, size_t len, unsigned char value)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != value)
            return 0;
    return 1;
}

static void small_mallocs(void)
{
    enum { COUNT = 2000 };
    static unsigned char *blocks[COUNT];
    int ok = 1;
    for (int i = 0; i < COUNT; i++) {
        size_t size = (size_t)(i % 200) + 1;
        blocks[i] = malloc(size);
        if (!blocks[i]) {
            ok = 0;
            break;
        }
        memset(blocks[i], i & 0xff, size);
    }
    for (int i = 0; ok && i < COUNT; i++)
        if (!filled_with(blocks[i], (size_t)(i % 200) + 1, (unsigned char)(i & 0xff)))
            ok = 0;
    for (int i = 0; i < COUNT; i++)
        free(blocks[i]);
    check("2000 small mallocs keep their contents", ok);

    void *aligned = malloc(24);
    check("malloc result 16-byte aligned", aligned && ((uintptr_t)aligned % 16) == 0);
    free(aligned);
}

static void large_malloc(void)
{
    size_t size = 24ul << 20;
    unsigned char *big = malloc(size);
    check("malloc 24 MiB", big != NULL);
    if (!big)
        return;
    for (size_t i = 0; i < size; i += PAGE)
        big[i] = (unsigned char)(i / PAGE);
    int ok = 1;
    for (size_t i = 0; i < size; i += PAGE)
        if (big[i] != (unsigned char)(i / PAGE))
            ok = 0;
    check("24 MiB block holds a byte per page", ok);
    unsigned char *grown = realloc(big, size * 2);
    check("realloc to 48 MiB", grown != NULL);
    if (grown) {
        check("realloc preserved contents", grown[PAGE * 7] == 7 && grown[0] == 0);
        free(grown);
    } else {
        free(big);
    }
    unsigned char *zeroed = calloc(1, 8ul << 20);
    check("calloc 8 MiB is zeroed", zeroed && filled_with(zeroed, 8ul << 20, 0));
    free(zeroed);
}

static void anonymous_mmap(void)
{
    size_t len = 64 * PAGE;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap anonymous 256 KiB", p != MAP_FAILED);
    if (p == MAP_FAILED)
        return;
    check("mmap result page aligned", ((uintptr_t)p % PAGE) == 0);
    check("fresh mapping is zero-filled", filled_with(p, len, 0));
    memset(p, 0xab, len);
    check("mapping keeps writes", filled_with(p, len, 0xab));

    outcome("mprotect read-only", mprotect(p, PAGE, PROT_READ));
    check("read-only page still readable", p[0] == 0xab && p[PAGE - 1] == 0xab);
    outcome("mprotect read-write", mprotect(p, PAGE, PROT_READ | PROT_WRITE));
    p[0] = 0x11;
    check("page writable again", p[0] == 0x11);
    /* Raw syscall: musl's wrapper rounds the address down before the kernel sees it. */
    outcome("mprotect unaligned", syscall(SYS_mprotect, p + 1, PAGE, PROT_READ));

    /* Unmapping the middle leaves both ends usable. */
    outcome("munmap middle pages", munmap(p + 16 * PAGE, 16 * PAGE));
    check("pages before the hole intact", p[15 * PAGE] == 0xab);
    check("pages after the hole intact", p[32 * PAGE] == 0xab);
    outcome("munmap unaligned", munmap(p + 1, PAGE));
    outcome("munmap zero length", munmap(p, 0));
    outcome("munmap rest low", munmap(p, 16 * PAGE));
    outcome("munmap rest high", munmap(p + 32 * PAGE, 32 * PAGE));
    outcome("munmap already unmapped", munmap(p, PAGE));

    void *bad = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1);
    printf("mmap unaligned offset: %s\n", bad == MAP_FAILED ? errno_name(errno) : "mapped");
    bad = mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap zero length: %s\n", bad == MAP_FAILED ? errno_name(errno) : "mapped");
    bad = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 1000, 0);
    printf("mmap bad fd: %s\n", bad == MAP_FAILED ? errno_name(errno) : "mapped");

    /* MAP_FIXED over a fresh hint replaces it with zeroed pages. */
    unsigned char *q = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q != MAP_FAILED) {
        memset(q, 0x5a, 4 * PAGE);
        unsigned char *r = mmap(q + PAGE, PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        check("MAP_FIXED lands at the requested address", r == q + PAGE);
        check("MAP_FIXED pages are zero", filled_with(q + PAGE, PAGE, 0));
        check("neighbours of MAP_FIXED intact", q[0] == 0x5a && q[2 * PAGE] == 0x5a);
        munmap(q, 4 * PAGE);
    }
}

static void mremap_grow(void)
{
    size_t old_len = 4 * PAGE, new_len = 256 * PAGE;
    unsigned char *p = mmap(NULL, old_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mremap setup mmap: %s\n", errno_name(errno));
        return;
    }
    for (size_t i = 0; i < old_len; i++)
        p[i] = (unsigned char)(i * 7);
    unsigned char *g = mremap(p, old_len, new_len, MREMAP_MAYMOVE);
    check("mremap grow with MREMAP_MAYMOVE", g != MAP_FAILED);
    if (g == MAP_FAILED)
        return;
    int kept = 1;
    for (size_t i = 0; i < old_len; i++)
        if (g[i] != (unsigned char)(i * 7))
            kept = 0;
    check("mremap kept old contents", kept);
    check("mremap new tail is zero", filled_with(g + old_len, new_len - old_len, 0));
    g[new_len - 1] = 1;
    check("mremap new tail writable", g[new_len - 1] == 1);
    void *shrunk = mremap(g, new_len, PAGE, 0);
    check("mremap shrink in place", shrunk == g);
    void *bad = mremap(g, PAGE, 2 * PAGE, 0xf0);
    printf("mremap bad flags: %s\n", bad == MAP_FAILED ? errno_name(errno) : "remapped");
    munmap(g, PAGE);
}

/* The raw brk system call (musl's brk()/sbrk(n) wrappers refuse to move the break, so
 * libc wrappers would not reach the kernel). It returns the new break on success and
 * the unchanged break on failure. */
static uintptr_t raw_brk(uintptr_t requested)
{
    return (uintptr_t)syscall(SYS_brk, requested);
}

static void program_break(void)
{
    uintptr_t base = raw_brk(0);
    check("brk(0) returns a nonzero break", base != 0);
    if (base == 0)
        return;
    /* Round up: the initial break need not be page aligned. */
    uintptr_t start = (base + PAGE - 1) & ~(PAGE - 1);
    uintptr_t grown = raw_brk(start + 65536);
    check("brk grow 64 KiB moves the break", grown == start + 65536);
    if (grown != start + 65536)
        return;
    memset((void *)base, 0x77, grown - base);
    check("grown break area holds writes", filled_with((void *)base, grown - base, 0x77));
    check("brk shrink moves the break back", raw_brk(start) == start);
    check("brk below the initial break is refused", raw_brk(base - (1ul << 30)) == start);
    uintptr_t regrown = raw_brk(start + 8192);
    check("brk regrow succeeds", regrown == start + 8192);
    check("regrown break area is zero", filled_with((void *)start, 8192, 0));
    raw_brk(base);
}

int main(void)
{
    small_mallocs();
    large_malloc();
    anonymous_mmap();
    mremap_grow();
    program_break();
    return 0;
}
