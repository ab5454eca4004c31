/* Host memory for CPU batches, with the last freed large blocks kept for reuse.
 *
 * The workers write a batch once, row by row. Fresh pages cost a page fault and
 * zeroing by the kernel at first touch; for a batch of 224x224 images on a VM
 * that is about a tenth of the load time. Programs load batches of one size over
 * and over, so a large block, when freed, is kept (at most SPDL_POOL_KEEP of them,
 * SPDL_POOL_KEEP_BYTES in all, the oldest released first) and handed out again for
 * a request it fits without wasting more than a quarter of itself. New large
 * blocks are mapped on 2 MiB boundaries and marked for transparent huge pages,
 * so even a first batch faults once per 2 MiB rather than once per 4 KiB.
 *
 * Every block carries a 64-byte header (its size and kind) in front of the
 * pointer handed out, which stays 64-byte aligned.
 */
#ifndef SPDL_HOSTPOOL_H
#define SPDL_HOSTPOOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPDL_POOL_MIN ((size_t)1 << 20)            /* smaller blocks: the C heap */
#define SPDL_POOL_KEEP 2
#define SPDL_POOL_KEEP_BYTES ((size_t)512 << 20)
#define SPDL_POOL_HDR 64
#define SPDL_POOL_HUGE ((size_t)2 << 20)

typedef struct {
    size_t len;         /* bytes mapped (large) or allocated (small), header included */
    int large;
} spdl_pool_hdr;

static pthread_mutex_t spdl_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *spdl_pool_kept[SPDL_POOL_KEEP];    /* oldest first */
static int spdl_pool_n = 0;
static size_t spdl_pool_bytes = 0;

/* fork() while another thread holds the lock would leave the child's copy locked
 * forever (data loaders fork their workers): the fork waits for the lock, and
 * both processes release it after. */
static void spdl_pool_prefork(void) { pthread_mutex_lock(&spdl_pool_lock); }
static void spdl_pool_postfork(void) { pthread_mutex_unlock(&spdl_pool_lock); }
static pthread_once_t spdl_pool_once = PTHREAD_ONCE_INIT;
static void spdl_pool_init(void)
{
    pthread_atfork(spdl_pool_prefork, spdl_pool_postfork, spdl_pool_postfork);
}

static void spdl_pool_acquire(void)
{
    pthread_once(&spdl_pool_once, spdl_pool_init);
    pthread_mutex_lock(&spdl_pool_lock);
}

static void *spdl_pool_map(size_t len)
{
    /* Map 2 MiB more than needed and trim both ends to a 2 MiB-aligned range. */
    size_t span = len + SPDL_POOL_HUGE;
    uint8_t *raw = (uint8_t *)mmap(NULL, span, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *p;
    size_t head;
    if (raw == (uint8_t *)MAP_FAILED)
        return NULL;
    p = (uint8_t *)(((uintptr_t)raw + SPDL_POOL_HUGE - 1) & ~(uintptr_t)(SPDL_POOL_HUGE - 1));
    head = (size_t)(p - raw);
    if (head)
        munmap(raw, head);
    if (span - head > len)
        munmap(p + len, span - head - len);
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);     /* advice only: fine if refused */
#endif
    return p;
}

/* size bytes, 64-byte aligned, or NULL. */
static void *spdl_pool_alloc(size_t size)
{
    spdl_pool_hdr *h = NULL;
    int i, best = -1;
    size_t len;
    if (size > SIZE_MAX - SPDL_POOL_HUGE - SPDL_POOL_HDR)
        return NULL;
    if (size < SPDL_POOL_MIN) {
        void *p = NULL;
        if (posix_memalign(&p, SPDL_POOL_HDR, size + SPDL_POOL_HDR) != 0)
            return NULL;
        h = (spdl_pool_hdr *)p;
        h->len = size + SPDL_POOL_HDR;
        h->large = 0;
        return (uint8_t *)p + SPDL_POOL_HDR;
    }
    len = (size + SPDL_POOL_HDR + SPDL_POOL_HUGE - 1) & ~(SPDL_POOL_HUGE - 1);
    spdl_pool_acquire();
    for (i = 0; i < spdl_pool_n; i++) {     /* the smallest kept block that fits */
        size_t have = ((spdl_pool_hdr *)spdl_pool_kept[i])->len;
        if (have >= len && have - len <= have / 4
                && (best < 0 || have < ((spdl_pool_hdr *)spdl_pool_kept[best])->len))
            best = i;
    }
    if (best >= 0) {
        h = (spdl_pool_hdr *)spdl_pool_kept[best];
        spdl_pool_bytes -= h->len;
        for (i = best; i + 1 < spdl_pool_n; i++)
            spdl_pool_kept[i] = spdl_pool_kept[i + 1];
        spdl_pool_n--;
    }
    pthread_mutex_unlock(&spdl_pool_lock);
    if (h == NULL) {
        h = (spdl_pool_hdr *)spdl_pool_map(len);
        if (h == NULL)
            return NULL;
        h->len = len;
        h->large = 1;
    }
    return (uint8_t *)h + SPDL_POOL_HDR;
}

static void spdl_pool_free(void *ptr)
{
    spdl_pool_hdr *h, *evicted[SPDL_POOL_KEEP];
    int i, n_evicted = 0;
    if (ptr == NULL)
        return;
    h = (spdl_pool_hdr *)((uint8_t *)ptr - SPDL_POOL_HDR);
    if (!h->large) {
        free(h);
        return;
    }
    if (h->len > SPDL_POOL_KEEP_BYTES) {
        munmap(h, h->len);
        return;
    }
    spdl_pool_acquire();
    /* Make room: the oldest blocks go until this one fits (unmapped after unlocking). */
    while (spdl_pool_n == SPDL_POOL_KEEP || spdl_pool_bytes + h->len > SPDL_POOL_KEEP_BYTES) {
        evicted[n_evicted] = (spdl_pool_hdr *)spdl_pool_kept[0];
        spdl_pool_bytes -= evicted[n_evicted++]->len;
        for (i = 0; i + 1 < spdl_pool_n; i++)
            spdl_pool_kept[i] = spdl_pool_kept[i + 1];
        spdl_pool_n--;
    }
    spdl_pool_kept[spdl_pool_n++] = h;
    spdl_pool_bytes += h->len;
    pthread_mutex_unlock(&spdl_pool_lock);
    for (i = 0; i < n_evicted; i++)
        munmap(evicted[i], evicted[i]->len);
}

/* Release every kept block; returns how many bytes were released. */
static size_t spdl_pool_trim(void)
{
    size_t total = 0;
    for (;;) {
        spdl_pool_hdr *h = NULL;
        spdl_pool_acquire();
        if (spdl_pool_n > 0) {
            h = (spdl_pool_hdr *)spdl_pool_kept[--spdl_pool_n];
            spdl_pool_bytes -= h->len;
        }
        pthread_mutex_unlock(&spdl_pool_lock);
        if (h == NULL)
            return total;
        total += h->len;
        munmap(h, h->len);
    }
}

/* For tests: hold the pool's lock for a while, as an allocating thread would. */
static void spdl_pool_hold(unsigned microseconds)
{
    spdl_pool_acquire();
    usleep(microseconds);
    pthread_mutex_unlock(&spdl_pool_lock);
}

static void spdl_pool_stats(int *blocks, size_t *bytes)
{
    spdl_pool_acquire();
    *blocks = spdl_pool_n;
    *bytes = spdl_pool_bytes;
    pthread_mutex_unlock(&spdl_pool_lock);
}

#endif
