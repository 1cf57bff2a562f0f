// Persistent worker pool: spin-then-park workers, work handed out by an atomic counter so a preempted
// thread does not hold up the others (the machine is often shared).
#include "include/kernels.h"
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <sched.h>

#if defined(__x86_64__)
#define PK_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define PK_PAUSE() __asm__ volatile("yield")
#else
#define PK_PAUSE() do {} while (0)
#endif

/* Spin for about this long before sleeping: long enough to bridge the gap between two matmuls of a
   decode step, short enough not to burn a shared core while nothing runs. */
#define PK_SPIN_NS 200000

/* The current job is one 64-bit ticket: generation (16 bits) | task count n (24 bits) | next index (24 bits).
   A worker claims a task with a compare-and-swap on the whole ticket, so a worker that stalled across jobs
   can never run an index of one job with another job's function. */
#define PK_MAX_TASKS ((1 << 24) - 1)

struct pk_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t mutex;      // guards sleepers / the condition variable
    pthread_cond_t wake;
    pthread_mutex_t run_lock;   // one pk_pool_run at a time
    int sleepers;
    int stop;                   // atomic
    uint64_t wakeups;           // bumped for each job, for sleeping workers (atomic)
    uint64_t ticket;            // atomic
    int64_t done;               // tasks finished in the current job (atomic)
    struct { pk_task_fn fn; void *ctx; } slot[2];   // job descriptions, by generation parity
    uint16_t gen;
};

static _Thread_local int pk_in_task = 0;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline int has_work(uint64_t t) { return (t & 0xFFFFFF) < ((t >> 24) & 0xFFFFFF); }

/* Claims and runs tasks of the current job until none is left. */
static void do_tasks(pk_pool *p) {
    pk_in_task = 1;
    uint64_t t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    while (has_work(t)) {
        unsigned g = (unsigned)(t >> 48);
        pk_task_fn fn = p->slot[g & 1].fn;
        void *ctx = p->slot[g & 1].ctx;
        if (__atomic_compare_exchange_n(&p->ticket, &t, t + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            fn(ctx, (int64_t)(t & 0xFFFFFF));
            __atomic_fetch_add(&p->done, 1, __ATOMIC_RELEASE);
            t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
        }
        // on failure t holds the fresh ticket: retry
    }
    pk_in_task = 0;
}

static void *worker_main(void *arg) {
    pk_pool *p = (pk_pool *)arg;
    for (;;) {
        uint64_t w = __atomic_load_n(&p->wakeups, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
        if (has_work(__atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE))) { do_tasks(p); continue; }
        // nothing to do: spin a little, then sleep until the next job is announced
        uint64_t t0 = now_ns();
        int spins = 0, found = 0;
        while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
            if (has_work(__atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE))) { found = 1; break; }
            PK_PAUSE();
            if (++spins % 64 == 0 && now_ns() - t0 > PK_SPIN_NS) break;
        }
        if (found) continue;
        pthread_mutex_lock(&p->mutex);
        p->sleepers++;
        while (__atomic_load_n(&p->wakeups, __ATOMIC_ACQUIRE) == w && !p->stop) pthread_cond_wait(&p->wake, &p->mutex);
        p->sleepers--;
        pthread_mutex_unlock(&p->mutex);
    }
}

pk_pool *pk_pool_create(int threads) {
    pk_pool *p = (pk_pool *)calloc(1, sizeof(pk_pool));
    if (!p) return NULL;
    p->threads = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->workers = (pthread_t *)calloc((size_t)p->threads, sizeof(pthread_t));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 4u << 20);   // kernels keep row tiles on the stack
    int started = 0;
    for (int i = 1; i < p->threads; i++) {
        if (pthread_create(&p->workers[1 + started], &attr, worker_main, p) != 0) break;
        started++;
    }
    pthread_attr_destroy(&attr);
    p->threads = started + 1;   // fewer workers if the system refused some
    return p;
}

void pk_pool_destroy(pk_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mutex);
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 1; i < p->threads; i++) pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mutex);
    pthread_mutex_destroy(&p->run_lock);
    free(p->workers);
    free(p);
}

int pk_pool_threads(const pk_pool *p) { return p ? p->threads : 1; }

void pk_pool_run(pk_pool *p, int64_t n, pk_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->threads == 1 || n == 1 || n > PK_MAX_TASKS || pk_in_task || pthread_mutex_trylock(&p->run_lock) != 0) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    uint16_t g = ++p->gen;
    p->slot[g & 1].fn = fn;
    p->slot[g & 1].ctx = ctx;
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->ticket, ((uint64_t)g << 48) | ((uint64_t)n << 24), __ATOMIC_RELEASE);
    __atomic_fetch_add(&p->wakeups, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->mutex);
    if (p->sleepers > 0) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    do_tasks(p);
    // tasks claimed by workers may still be running
    for (int spins = 1; __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < n; spins++) {
        PK_PAUSE();
        if (spins % 1024 == 0) sched_yield();   // a preempted worker needs this core back
    }
    pthread_mutex_unlock(&p->run_lock);
}
