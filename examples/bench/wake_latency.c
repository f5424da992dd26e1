/*
 * How long a task woken by another one waits before it runs, and on which CPU: docs/overhead.md
 * ("What changed this stop"). A child blocks on a pipe; the parent, at the scheduling POLICY
 * given (0 SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE), writes to it 200 us later and then stays
 * busy for 300 us, as the supervisor does when it answers the launcher's exec and hardens
 * itself. Prints the mean time from the write to the child running, and how often the child ran
 * on the parent's CPU.
 *
 *   gcc -O2 -o /tmp/wake_latency examples/bench/wake_latency.c
 *   /tmp/wake_latency 0; /tmp/wake_latency 3; /tmp/wake_latency 5
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ns(void) {
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    return at.tv_sec * 1000000000L + at.tv_nsec;
}

static void must(int ok, const char *what) {
    if (!ok) {
        perror(what);
        exit(1);
    }
}

int main(int argc, char **argv) {
    int policy = argc > 1 ? atoi(argv[1]) : SCHED_OTHER;
    const int rounds = 200;
    long total_ns = 0;
    int on_wakers_cpu = 0;
    for (int round = 0; round < rounds; round++) {
        int to_child[2], to_parent[2];
        must(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");
        pid_t child = fork();
        must(child >= 0, "fork");
        if (child == 0) {
            long written_at;
            must(write(to_parent[1], "r", 1) == 1, "write");
            must(read(to_child[0], &written_at, sizeof written_at) == sizeof written_at, "read");
            long waited = now_ns() - written_at;
            int cpu = sched_getcpu();
            must(write(to_parent[1], &waited, sizeof waited) == sizeof waited, "write");
            must(write(to_parent[1], &cpu, sizeof cpu) == sizeof cpu, "write");
            _exit(0);
        }
        struct sched_param parameters = { 0 };
        must(sched_setscheduler(0, policy, &parameters) == 0, "sched_setscheduler");
        char ready;
        must(read(to_parent[0], &ready, 1) == 1, "read");
        usleep(200); /* the child is blocked in its read by now */
        int wakers_cpu = sched_getcpu();
        long written_at = now_ns();
        must(write(to_child[1], &written_at, sizeof written_at) == sizeof written_at, "write");
        for (long until = now_ns() + 300000; now_ns() < until;) {
        }
        long waited;
        int cpu;
        must(read(to_parent[0], &waited, sizeof waited) == sizeof waited, "read");
        must(read(to_parent[0], &cpu, sizeof cpu) == sizeof cpu, "read");
        waitpid(child, NULL, 0);
        total_ns += waited;
        on_wakers_cpu += cpu == wakers_cpu;
        must(sched_setscheduler(0, SCHED_OTHER, &parameters) == 0, "sched_setscheduler");
        close(to_child[0]);
        close(to_child[1]);
        close(to_parent[0]);
        close(to_parent[1]);
    }
    printf("policy %d: %ld us from the wake-up to the child running (mean), on the waker's CPU %d of %d\n",
           policy, total_ns / rounds / 1000, on_wakers_cpu, rounds);
    return 0;
}
