/* env: prints selected environment variables, distinguishing unset from empty. */
#include <stdio.h>
#include <stdlib.h>

static void show(const char *name)
{
    const char *value = getenv(name);
    if (value)
        printf("%s=[%s]\n", name, value);
    else
        printf("%s is unset\n", name);
}

int main(void)
{
    show("SKIFF_PLAIN");
    show("SKIFF_SPACES");
    show("SKIFF_EQUALS");
    show("SKIFF_EMPTY");
    show("SKIFF_UNSET");
    return 0;
}
