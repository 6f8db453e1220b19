/* uname: prints the kernel name (must be "Linux" for programs that check it) and whether
 * the release string is nonempty (its value legitimately differs between kernels). */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "common.h"

int main(void)
{
    struct utsname u;
    if (outcome("uname", uname(&u)) < 0)
        return 1;
    printf("sysname: %s\n", u.sysname);
    check("release nonempty", u.release[0] != '\0');
    return 0;
}
