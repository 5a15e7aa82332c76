/* counter_lines.c -- what a shared counter costs reactors on different cores (issue 12).
 *
 * Two threads each add 1 to a relaxed atomic counter N times: once both on the same cache
 * line (one shared ConnectionCounters), once each on its own 128-byte stripe (Twine's
 * striped counters). Prints the threads' CPU time per increment (a bouncing line stalls the
 * core, and stalls count as CPU time, so other load on the machine matters less than for wall
 * time; run it pinned to two cores: taskset -c 0,1).  cc -O2 -pthread counter_lines.c
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 20000000L
static _Alignas(128) struct { _Atomic long value; char pad[120]; } stripes[2];

struct job { _Atomic long *counter; double ns; };

static void *work(void *arg) {
    struct job *job = arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long i = 0; i < N; i++) atomic_fetch_add_explicit(job->counter, 1, memory_order_relaxed);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    job->ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (double)N;
    return NULL;
}

static double run(_Atomic long *a, _Atomic long *b) {
    struct job x = {a, 0}, y = {b, 0};
    pthread_t tx, ty;
    pthread_create(&tx, NULL, work, &x);
    pthread_create(&ty, NULL, work, &y);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    return (x.ns + y.ns) / 2;
}

int main(void) {
    for (int round = 0; round < 5; round++) {
        double shared = run(&stripes[0].value, &stripes[0].value);
        double striped = run(&stripes[0].value, &stripes[1].value);
        printf("round %d: shared line %.2f ns of CPU per increment, striped %.2f ns\n", round + 1, shared, striped);
    }
    return 0;
}
