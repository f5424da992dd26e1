/*
 * What the kernel layers cost on their own, without h: docs/overhead.md ("Per call").
 *
 *   gcc -O2 -o /tmp/kernel_costs examples/bench/kernel_costs.c
 *   /tmp/kernel_costs open FILE LAYERS N    # ns per openat+fstat+read+close of FILE
 *   /tmp/kernel_costs install LENGTH N      # us per seccomp install of a LENGTH-instruction program
 *   /tmp/kernel_costs install-short LENGTH N  # the same length, but every evaluation runs 3 of them
 *   /tmp/kernel_costs compare A B N         # us per install of two programs, alternately
 *   /tmp/kernel_costs call LAYERS N         # ns per getppid (entering the kernel) under LAYERS
 *   /tmp/kernel_costs capbset N             # us to empty the capability bounding set (root)
 *   /tmp/kernel_costs capbset-read N        # the same, reading each capability before its drop
 *
 * `compare` reads each program as lines of "code jt jf k" (hexadecimal code and k), e.g. from a
 * committed program: grep -o 'SockFilter {[^}]*}' hosts/hlua/src/generated/seccomp_x86_64.rs |
 *   sed -E 's|^.*code: 0x([0-9a-f]+), jt: ([0-9]+), jf: ([0-9]+), k: 0x([0-9a-f]+).*$|\1 \2 \3 \4|'
 *
 * LAYERS is applied in order before the loop, each letter one layer: '-' nothing, 'a' a seccomp
 * filter that allows every call whatever its arguments (the kernel caches its verdict), 'c' a
 * filter that reads openat's flags (run on every openat), 'r' a landlock domain with one rule
 * at /, 'd' a landlock domain with one rule at FILE's directory, 'h' the same rule as h grants
 * reading (READ_FILE and READ_DIR) in a domain that handles what h's handle for files up to
 * IOCTL_DEV (ABI 5), so that every open also asks for TRUNCATE and IOCTL_DEV, which no read
 * grant gives. Each process measures itself once; run it several times.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what) {
    perror(what);
    exit(1);
}

static double now_ns(void) {
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    return at.tv_sec * 1e9 + at.tv_nsec;
}

/* A domain handling `handled` with one rule at `beneath` granting `granted`. */
static void landlock_layer(const char *beneath, unsigned long long handled_access, unsigned long long granted) {
    struct landlock_ruleset_attr handled = { .handled_access_fs = handled_access };
    int ruleset = syscall(SYS_landlock_create_ruleset, &handled, sizeof handled, 0);
    if (ruleset < 0)
        fail("landlock_create_ruleset");
    struct landlock_path_beneath_attr rule = { .allowed_access = granted };
    rule.parent_fd = open(beneath, O_PATH | O_CLOEXEC);
    if (rule.parent_fd < 0 || syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0))
        fail("landlock_add_rule");
    if (syscall(SYS_landlock_restrict_self, ruleset, 0))
        fail("landlock_restrict_self");
    close(rule.parent_fd);
    close(ruleset);
}

static void seccomp_layer(struct sock_filter *program, unsigned short length) {
    struct sock_fprog filter = { length, program };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter))
        fail("seccomp");
}

/* Applies LAYERS in order (see the comment at the top); `directory` is the 'd' layer's rule. */
static void apply_layers(const char *layers, const char *directory) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        fail("no_new_privs");
    struct sock_filter allow_all[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
    /* openat's flags (the low half of argument 2) are read, so no verdict can be cached. */
    struct sock_filter check_openat[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, O_PATH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1),
    };
    for (const char *layer = layers; *layer; layer++) {
        switch (*layer) {
        case '-': break;
        case 'a': seccomp_layer(allow_all, 1); break;
        case 'c': seccomp_layer(check_openat, 6); break;
        case 'r': landlock_layer("/", (1ULL << 13) - 1, (1ULL << 13) - 1); break;
        case 'd': landlock_layer(directory, (1ULL << 13) - 1, (1ULL << 13) - 1); break;
        case 'h':
            landlock_layer(directory, (1ULL << 16) - 1, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR);
            break;
        default: fprintf(stderr, "unknown layer %c\n", *layer); exit(1);
        }
    }
}

static void open_loop(const char *file, const char *layers, int count) {
    char directory[4096];
    snprintf(directory, sizeof directory, "%s", file);
    dirname(directory);
    apply_layers(layers, directory);
    char buffer[4096];
    struct stat status;
    double start = now_ns();
    for (int i = 0; i < count; i++) {
        int fd = openat(AT_FDCWD, file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            fail(file);
        fstat(fd, &status);
        while (read(fd, buffer, sizeof buffer) > 0) {
        }
        close(fd);
    }
    printf("open %-6s %8.1f ns per openat+fstat+read+close\n", layers, (now_ns() - start) / count);
}

/* What entering the kernel costs: getppid (no work of its own) COUNT times under LAYERS. */
static void call_loop(const char *layers, int count) {
    apply_layers(layers, "/");
    double start = now_ns();
    for (int i = 0; i < count; i++)
        syscall(SYS_getppid);
    printf("call %-6s %8.1f ns per getppid\n", layers, (now_ns() - start) / count);
}

/* Runs `work(argument)` once in a fresh child and returns how long it took there, in
 * nanoseconds; the child reports through `pipe_ends`. */
static double in_fresh_child(void (*work)(const void *), const void *argument, int pipe_ends[2]) {
    pid_t child = fork();
    if (child == 0) {
        double start = now_ns();
        work(argument);
        double spent = now_ns() - start;
        if (write(pipe_ends[1], &spent, sizeof spent) != sizeof spent)
            _exit(1);
        _exit(0);
    }
    double spent = 0;
    if (read(pipe_ends[0], &spent, sizeof spent) != sizeof spent)
        fail("read");
    waitpid(child, NULL, 0);
    return spent;
}

/* Empties the capability bounding set (as the sandbox does when run by root): every
 * PR_CAPBSET_DROP commits a new set of credentials. With `*read_first`, each capability is read
 * first and dropped only if present (one more call each). */
static void empty_bounding_set(const void *read_first) {
    for (int capability = 0; capability < 64; capability++) {
        if (*(const int *)read_first && prctl(PR_CAPBSET_READ, capability, 0, 0, 0) != 1)
            break;
        if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0)
            break;
    }
}

static void capbset_loop(int count, int read_first) {
    int pipe_ends[2];
    if (pipe(pipe_ends))
        fail("pipe");
    double total = 0;
    for (int run = 0; run < count; run++)
        total += in_fresh_child(empty_bounding_set, &read_first, pipe_ends);
    printf("capbset%s %8.1f us per emptied bounding set\n", read_first ? "-read" : "", total / count / 1000);
}

struct install { const struct sock_filter *program; int length; };

static void install(const void *argument) {
    const struct install *what = argument;
    seccomp_layer((struct sock_filter *)what->program, what->length);
}

/* One install of `program` in a fresh child (no_new_privs set before the clock starts), in
 * nanoseconds. */
static double install_once(const struct sock_filter *program, int length, int pipe_ends[2]) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        fail("no_new_privs");
    struct install what = { program, length };
    return in_fresh_child(install, &what, pipe_ends);
}

/* LENGTH instructions that every evaluation runs through (jumps that never branch), then allow:
 * the kernel evaluates the program once per syscall number at install to find the verdicts it
 * can cache, so the cost grows with the path an evaluation takes. With `short`, the second
 * instruction jumps straight to the last: the same length to translate and compile, a path of 3.
 * The difference between the two is the evaluation; what `short` costs is the length's. */
static void install_loop(int length, int count, int short_path) {
    struct sock_filter *program = calloc(length, sizeof *program);
    program[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 1; i < length - 1; i++)
        program[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 100000 + i, 0, 0);
    if (short_path && length > 3)
        program[1] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, length - 3);
    program[length - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    int pipe_ends[2];
    if (pipe(pipe_ends))
        fail("pipe");
    double total = 0;
    for (int run = 0; run < count; run++)
        total += install_once(program, length, pipe_ends);
    printf("install%s %4d instructions %8.1f us\n", short_path ? "-short" : "", length, total / count / 1000);
}

static int read_program(const char *file, struct sock_filter *program) {
    FILE *input = fopen(file, "r");
    if (!input)
        fail(file);
    unsigned code, jt, jf, k;
    int length = 0;
    while (length < 4096 && fscanf(input, "%x %u %u %x", &code, &jt, &jf, &k) == 4)
        program[length++] = (struct sock_filter){ code, jt, jf, k };
    fclose(input);
    return length;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Installs A and B alternately COUNT times each (a drift of the machine reaches both) and prints
 * the median of each. */
static void compare_loop(const char *first, const char *second, int count) {
    static struct sock_filter programs[2][4096];
    const char *files[2] = { first, second };
    int lengths[2] = { read_program(first, programs[0]), read_program(second, programs[1]) };
    double *times[2] = { calloc(count, sizeof(double)), calloc(count, sizeof(double)) };
    int pipe_ends[2];
    if (pipe(pipe_ends))
        fail("pipe");
    for (int run = 0; run < count; run++)
        for (int which = 0; which < 2; which++)
            times[which][run] = install_once(programs[which], lengths[which], pipe_ends);
    for (int which = 0; which < 2; which++) {
        qsort(times[which], count, sizeof(double), by_value);
        printf("%s: %d instructions, median install %.1f us\n", files[which], lengths[which],
               times[which][count / 2] / 1000);
    }
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "open") == 0)
        open_loop(argv[2], argv[3], atoi(argv[4]));
    else if (argc == 4 && strcmp(argv[1], "install") == 0 && atoi(argv[2]) >= 2 && atoi(argv[2]) <= 4096)
        install_loop(atoi(argv[2]), atoi(argv[3]), 0);
    else if (argc == 4 && strcmp(argv[1], "install-short") == 0 && atoi(argv[2]) >= 4 && atoi(argv[2]) <= 4096)
        install_loop(atoi(argv[2]), atoi(argv[3]), 1);
    else if (argc == 5 && strcmp(argv[1], "compare") == 0 && atoi(argv[4]) > 0)
        compare_loop(argv[2], argv[3], atoi(argv[4]));
    else if (argc == 4 && strcmp(argv[1], "call") == 0 && atoi(argv[3]) > 0)
        call_loop(argv[2], atoi(argv[3]));
    else if (argc == 3 && strcmp(argv[1], "capbset") == 0 && atoi(argv[2]) > 0)
        capbset_loop(atoi(argv[2]), 0);
    else if (argc == 3 && strcmp(argv[1], "capbset-read") == 0 && atoi(argv[2]) > 0)
        capbset_loop(atoi(argv[2]), 1);
    else {
        fprintf(stderr, "usage: kernel_costs open FILE LAYERS N | call LAYERS N | install LENGTH N"
                        " | install-short LENGTH N | compare A B N | capbset N | capbset-read N\n");
        return 1;
    }
    return 0;
}
