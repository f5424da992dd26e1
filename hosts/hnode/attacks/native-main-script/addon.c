#include <stdio.h>
/* Runs when the library is mapped: whatever loads it runs native code of the script's choosing. */
__attribute__((constructor)) static void payload(void) {
    puts("native code ran");
    fflush(stdout);
}
