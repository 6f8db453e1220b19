/*
 * hello: argv, envp and auxiliary-vector sanity.
 *
 * Prints every argument (argv[0] included: Skiff puts the program at /bin/<name>, and the
 * differential harness runs the native copy with the same argv[0]), checks that main's
 * envp and `environ` agree, and checks the auxv entries a static libc relies on.
 */
#include "common.h"

#include <stdint.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv, char **envp)
{
    printf("hello from a static program\n");
    printf("argc: %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]: [%s]\n", i, argv[i]);
    check("argv[argc] is NULL", argv[argc] == NULL);

    int env_count = 0;
    int found_marker = 0;
    for (char **e = envp; *e; e++) {
        env_count++;
        if (strcmp(*e, "SKIFF_HELLO=world") == 0)
            found_marker = 1;
    }
    check("envp follows argv", envp == argv + argc + 1);
    check("envp is environ", envp == environ);
    check("envp has SKIFF_HELLO=world", found_marker);
    check("getenv(SKIFF_HELLO) is world",
          getenv("SKIFF_HELLO") && strcmp(getenv("SKIFF_HELLO"), "world") == 0);
    check("envp nonempty", env_count > 0);

    /* The auxiliary vector follows envp's NULL terminator. */
    char **after_env = envp + env_count + 1;
    unsigned long *auxv = (unsigned long *)after_env;
    int saw_pagesz = 0, saw_random = 0, saw_phdr = 0, saw_entry = 0, terminated = 0;
    for (int i = 0; i < 512; i += 2) {
        unsigned long type = auxv[i], value = auxv[i + 1];
        if (type == AT_NULL) {
            terminated = 1;
            break;
        }
        if (type == AT_PAGESZ && value == 4096)
            saw_pagesz = 1;
        if (type == AT_RANDOM && value != 0)
            saw_random = 1;
        if (type == AT_PHDR && value != 0)
            saw_phdr = 1;
        if (type == AT_ENTRY && value != 0)
            saw_entry = 1;
    }
    check("auxv terminated by AT_NULL", terminated);
    check("auxv AT_PAGESZ is 4096", saw_pagesz);
    check("auxv AT_RANDOM non-null", saw_random);
    check("auxv AT_PHDR non-null", saw_phdr);
    check("auxv AT_ENTRY non-null", saw_entry);

    check("getauxval(AT_PAGESZ) is 4096", getauxval(AT_PAGESZ) == 4096);
    check("sysconf(_SC_PAGESIZE) is 4096", sysconf(_SC_PAGESIZE) == 4096);
    const unsigned char *random_bytes = (const unsigned char *)getauxval(AT_RANDOM);
    check("getauxval(AT_RANDOM) non-null", random_bytes != NULL);
    if (random_bytes) {
        /* 16 bytes that are all zero would mean nobody filled them in. */
        int all_zero = 1;
        for (int i = 0; i < 16; i++)
            if (random_bytes[i])
                all_zero = 0;
        check("AT_RANDOM bytes not all zero", !all_zero);
    }
    check("getauxval(AT_ENTRY) non-null", getauxval(AT_ENTRY) != 0);
    check("getauxval(AT_PHNUM) > 0", getauxval(AT_PHNUM) > 0);
    check("getauxval(AT_PHENT) is 56", getauxval(AT_PHENT) == 56);
    /* AT_EXECFN is the path given to execve, which natively is the host path; both
     * runs agree on its last component. */
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    const char *argv0_base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *execfn_base =
        execfn && strrchr(execfn, '/') ? strrchr(execfn, '/') + 1 : execfn;
    check("AT_EXECFN names the program",
          execfn_base != NULL && strcmp(execfn_base, argv0_base) == 0);
    return 0;
}
