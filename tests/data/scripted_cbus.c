/* A scripted bus for busbench's c-abi tests: single-threaded, deterministic, and able to
 * lie in the ways a real bus can, so tests prove the sink's evidence catches each lie.
 *
 * push copies the payload (unless no_copy) into a list; flush delivers the list to the
 * sink in batches, event i to shard i % shards, applying the lie chosen by `lie`:
 *   0 honest, 1 lose every 10th, 2 deliver every 10th twice, 3 deliver newest first,
 *   4 keep the caller's pointer instead of copying (read after it was reused),
 *   5 deliver one foreign payload, 6 deliver on shard number `shards`, 7 flush returns 0
 *   at once and delivers nothing (shutdown delivers).
 * refuse_every=N: every Nth push returns -5. undeclared_after=K: push K+1 returns -99.
 * After shutdown every push returns -8.
 * Build: cc -shared -fPIC -pthread -o libscripted.so scripted_cbus.c
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sink_fn)(void *, int, const uint8_t *const *, const size_t *, size_t);
typedef struct { uint64_t ingested, dropped, batches, dispatched; } stats_t;
typedef struct {
    long shards, lie, refuse_every, undeclared_after;
    long pushes;
    size_t n, cap;
    uint8_t **data; size_t *lens; int *borrowed;
    sink_fn sink; void *ctx;
    int closed;
    stats_t s;
    pthread_mutex_t lock;     /* one call at a time: producers run in parallel */
} bus_t;

static long cfg(const char *c, const char *key, long fallback) {
    const char *at = c ? strstr(c, key) : NULL;
    if (!at) return fallback;
    at += strlen(key);
    while (*at == '"' || *at == ' ' || *at == ':' || *at == '=') at++;
    return strtol(at, NULL, 10);
}

void *sb_new(const char *config) {
    bus_t *b = calloc(1, sizeof(bus_t));
    b->shards = cfg(config, "shards", 2);
    b->lie = cfg(config, "lie", 0);
    b->refuse_every = cfg(config, "refuse_every", 0);
    b->undeclared_after = cfg(config, "undeclared_after", -1);
    if (b->shards < 1 || cfg(config, "fail_init", 0)) { free(b); return NULL; }
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

int sb_set_sink(void *h, sink_fn fn, void *ctx) { bus_t *b = h; b->sink = fn; b->ctx = ctx; return 0; }

static int push_locked(bus_t *b, const uint8_t *p, size_t len) {
    if (b->closed) return -8;
    long k = ++b->pushes;
    if (b->undeclared_after >= 0 && k > b->undeclared_after) return -99;
    b->s.ingested++;
    if (b->refuse_every && k % b->refuse_every == 0) { b->s.dropped++; return -5; }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->data = realloc(b->data, b->cap * sizeof(uint8_t *));
        b->lens = realloc(b->lens, b->cap * sizeof(size_t));
        b->borrowed = realloc(b->borrowed, b->cap * sizeof(int));
    }
    if (b->lie == 4) { b->data[b->n] = (uint8_t *)p; b->borrowed[b->n] = 1; }
    else { b->data[b->n] = malloc(len); memcpy(b->data[b->n], p, len); b->borrowed[b->n] = 0; }
    b->lens[b->n++] = len;
    return 0;
}

int sb_push(void *h, const uint8_t *p, size_t len) {
    bus_t *b = h;
    pthread_mutex_lock(&b->lock);
    int rc = push_locked(b, p, len);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

long sb_push_many(void *h, const uint8_t *const *ptrs, const size_t *lens, size_t n) {
    bus_t *b = h;
    long rc = (long)n;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < n; i++) {
        int one = push_locked(b, ptrs[i], lens[i]);
        if (one == 0) continue;
        if (one == -8 || one == -99) rc = i == 0 || one == -99 ? one : (long)i;
        else { b->s.ingested += n - i - 1; b->s.dropped += n - i - 1; rc = (long)i; }
        break;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

static void deliver(bus_t *b, int shard, const uint8_t *p, size_t len) {
    const uint8_t *ptrs[1] = {p};
    size_t lens[1] = {len};
    if (b->sink) b->sink(b->ctx, shard, ptrs, lens, 1);
    b->s.batches++;
    b->s.dispatched++;
}

static int flush_locked(bus_t *b) {
    for (size_t j = 0; j < b->n; j++) {
        size_t i = b->lie == 3 ? b->n - 1 - j : j;       /* 3: newest first */
        int shard = b->lie == 6 ? (int)b->shards : (int)(i % (size_t)b->shards);
        if (b->lie == 1 && i % 10 == 9) continue;        /* lost, counted nowhere */
        deliver(b, shard, b->data[i], b->lens[i]);
        if (b->lie == 2 && i % 10 == 9) deliver(b, shard, b->data[i], b->lens[i]);
    }
    if (b->lie == 5) {
        static const uint8_t junk[] = "{\"hello\": \"world\"}";
        deliver(b, 0, junk, sizeof junk - 1);
    }
    for (size_t i = 0; i < b->n; i++) if (!b->borrowed[i]) free(b->data[i]);
    b->n = 0;
    return 0;
}

int sb_flush(void *h, long timeout_ms) {
    bus_t *b = h;
    (void)timeout_ms;
    if (b->lie == 7) return 0;
    pthread_mutex_lock(&b->lock);
    int rc = flush_locked(b);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int sb_stats(void *h, stats_t *out) {
    bus_t *b = h;
    pthread_mutex_lock(&b->lock);
    *out = b->s;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int sb_shutdown(void *h, long grace_ms) {
    bus_t *b = h;
    (void)grace_ms;
    pthread_mutex_lock(&b->lock);
    flush_locked(b);
    b->closed = 1;
    pthread_mutex_unlock(&b->lock);
    return 0;
}
