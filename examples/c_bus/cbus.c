/* cbus: a small sharded event bus with a C ABI, the example of busbench's c-abi target.
 *
 * Each shard is a bounded ring (capacity a power of two) guarded by its own mutex,
 * drained by its own worker thread, which hands batches to an optional sink.
 * A full ring refuses the newest event (drop_newest). Counters follow busbench's
 * BUS.md: every event offered before shutdown counts as ingested; a refused one
 * also as dropped; a delivered one as dispatched. flush() is an exact per-shard
 * barrier; shutdown() refuses new events, drains every ring and joins the workers.
 *
 * Build: cc -O2 -shared -fPIC -pthread -o libcbus.so cbus.c
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CBUS_OK 0
#define CBUS_FULL (-5)
#define CBUS_CLOSED (-8)
#define CBUS_INVALID (-22)
#define CBUS_TIMED_OUT (-110)
#define MAX_PAYLOAD 256

typedef void (*cbus_sink_fn)(void *ctx, int shard, const uint8_t *const *payloads,
                             const size_t *lens, size_t n);

typedef struct {
    uint64_t events_ingested, events_dropped, batches_dispatched, events_dispatched;
    uint64_t shutdown_was_lossy;
} cbus_stats_t;

typedef struct { size_t len; uint8_t data[MAX_PAYLOAD]; } slot_t;

typedef struct cbus cbus_t;
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t work, progress;
    slot_t *slots;
    uint64_t head, tail;        /* popped, pushed (monotonic) */
    uint64_t settled;           /* events handed to the sink and returned from it */
    int flush_wanted;
    int index;
    cbus_t *bus;
    pthread_t worker;
} shard_t;

struct cbus {
    int shards, max_batch;
    uint64_t capacity;
    int closed;                 /* read and written under every shard lock, or atomically */
    cbus_sink_fn sink;
    void *sink_ctx;
    uint64_t ingested, dropped, batches, dispatched;   /* atomics */
    shard_t *shard;
};

static long config_int(const char *config, const char *key, long fallback) {
    /* finds "key": N (JSON) or key=N; enough for an example */
    const char *at = config ? strstr(config, key) : NULL;
    if (!at) return fallback;
    at += strlen(key);
    while (*at == '"' || *at == ' ' || *at == ':' || *at == '=') at++;
    char *end;
    long v = strtol(at, &end, 10);
    return end == at ? fallback : v;
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

static void *worker_main(void *arg) {
    shard_t *s = arg;
    cbus_t *b = s->bus;
    slot_t *batch = malloc(sizeof(slot_t) * (size_t)b->max_batch);
    const uint8_t **ptrs = malloc(sizeof(uint8_t *) * (size_t)b->max_batch);
    size_t *lens = malloc(sizeof(size_t) * (size_t)b->max_batch);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->head == s->tail && !__atomic_load_n(&b->closed, __ATOMIC_ACQUIRE))
            pthread_cond_wait(&s->work, &s->lock);
        if (s->head == s->tail) {              /* closed and drained */
            pthread_mutex_unlock(&s->lock);
            break;
        }
        size_t n = 0;
        while (s->head != s->tail && n < (size_t)b->max_batch) {
            batch[n] = s->slots[s->head & (b->capacity - 1)];
            s->head++;
            n++;
        }
        pthread_mutex_unlock(&s->lock);
        for (size_t i = 0; i < n; i++) { ptrs[i] = batch[i].data; lens[i] = batch[i].len; }
        if (b->sink) b->sink(b->sink_ctx, s->index, ptrs, lens, n);
        __atomic_fetch_add(&b->batches, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&b->dispatched, n, __ATOMIC_RELAXED);
        pthread_mutex_lock(&s->lock);
        s->settled += n;
        pthread_cond_broadcast(&s->progress);
        pthread_mutex_unlock(&s->lock);
    }
    free(batch); free(ptrs); free(lens);
    return NULL;
}

void *cbus_new(const char *config) {
    long shards = config_int(config, "shards", 4);
    long capacity = config_int(config, "capacity", 4096);
    long max_batch = config_int(config, "max_batch", 256);
    if (shards < 1 || shards > 1024 || capacity < 2 || (capacity & (capacity - 1)) || max_batch < 1)
        return NULL;
    cbus_t *b = calloc(1, sizeof(cbus_t));
    b->shards = (int)shards; b->capacity = (uint64_t)capacity; b->max_batch = (int)max_batch;
    b->shard = calloc((size_t)shards, sizeof(shard_t));
    for (int i = 0; i < b->shards; i++) {
        shard_t *s = &b->shard[i];
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->progress, NULL);
        s->slots = malloc(sizeof(slot_t) * (size_t)capacity);
        s->index = i; s->bus = b;
        pthread_create(&s->worker, NULL, worker_main, s);
    }
    return b;
}

int cbus_set_sink(void *h, cbus_sink_fn fn, void *ctx) {
    cbus_t *b = h;
    if (!b) return CBUS_INVALID;
    b->sink_ctx = ctx;
    b->sink = fn;       /* set before the first push: workers read it without a lock */
    return CBUS_OK;
}

int cbus_push(void *h, const uint8_t *data, size_t len) {
    cbus_t *b = h;
    if (!b || !data || len > MAX_PAYLOAD) return CBUS_INVALID;
    shard_t *s = &b->shard[fnv1a(data, len) % (uint64_t)b->shards];
    pthread_mutex_lock(&s->lock);
    if (b->closed) { pthread_mutex_unlock(&s->lock); return CBUS_CLOSED; }
    __atomic_fetch_add(&b->ingested, 1, __ATOMIC_RELAXED);
    if (s->tail - s->head >= b->capacity) {
        pthread_mutex_unlock(&s->lock);
        __atomic_fetch_add(&b->dropped, 1, __ATOMIC_RELAXED);
        return CBUS_FULL;
    }
    slot_t *slot = &s->slots[s->tail & (b->capacity - 1)];
    slot->len = len;
    memcpy(slot->data, data, len);
    if (s->tail++ == s->head)           /* the worker waits only on an empty ring */
        pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return CBUS_OK;
}

/* Returns how many events were accepted: the first ones, up to the first refusal.
 * The rest of the batch is refused with that one, and counted so. */
long cbus_push_many(void *h, const uint8_t *const *ptrs, const size_t *lens, size_t n) {
    cbus_t *b = h;
    for (size_t i = 0; i < n; i++) {
        int rc = cbus_push(h, ptrs[i], lens[i]);
        if (rc == CBUS_CLOSED && i == 0) return CBUS_CLOSED;
        if (rc == CBUS_FULL) {
            __atomic_fetch_add(&b->ingested, n - i - 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&b->dropped, n - i - 1, __ATOMIC_RELAXED);
        }
        if (rc != CBUS_OK) return (long)i;
    }
    return (long)n;
}

int cbus_flush(void *h, long timeout_ms) {
    cbus_t *b = h;
    if (!b) return CBUS_INVALID;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    int rc = CBUS_OK;
    for (int i = 0; i < b->shards; i++) {
        shard_t *s = &b->shard[i];
        pthread_mutex_lock(&s->lock);
        uint64_t target = s->tail;          /* everything pushed before the call */
        pthread_cond_signal(&s->work);
        while (s->settled < target && rc == CBUS_OK)
            if (pthread_cond_timedwait(&s->progress, &s->lock, &deadline) == ETIMEDOUT)
                rc = s->settled < target ? CBUS_TIMED_OUT : CBUS_OK;
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

int cbus_stats(void *h, cbus_stats_t *out) {
    cbus_t *b = h;
    if (!b || !out) return CBUS_INVALID;
    out->events_ingested = __atomic_load_n(&b->ingested, __ATOMIC_RELAXED);
    out->events_dropped = __atomic_load_n(&b->dropped, __ATOMIC_RELAXED);
    out->batches_dispatched = __atomic_load_n(&b->batches, __ATOMIC_RELAXED);
    out->events_dispatched = __atomic_load_n(&b->dispatched, __ATOMIC_RELAXED);
    out->shutdown_was_lossy = 0;    /* the drain below never gives up */
    return CBUS_OK;
}

/* Refuses new events, drains every ring, joins the workers. The handle stays valid
 * for cbus_stats (and answers CBUS_CLOSED to pushes); its memory is not freed. */
int cbus_shutdown(void *h, long grace_ms) {
    cbus_t *b = h;
    (void)grace_ms;     /* pushes hold a shard lock only briefly: nothing is ever in flight */
    if (!b) return CBUS_INVALID;
    for (int i = 0; i < b->shards; i++) pthread_mutex_lock(&b->shard[i].lock);
    int was_closed = b->closed;
    __atomic_store_n(&b->closed, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < b->shards; i++) {
        pthread_cond_signal(&b->shard[i].work);
        pthread_mutex_unlock(&b->shard[i].lock);
    }
    if (was_closed) return CBUS_OK;
    for (int i = 0; i < b->shards; i++) {
        pthread_join(b->shard[i].worker, NULL);
        free(b->shard[i].slots);
        b->shard[i].slots = NULL;
    }
    return CBUS_OK;
}
