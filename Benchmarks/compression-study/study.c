// Compression study for the documents backup (issue 15): what would zstd cost and store for the
// corpus's chunks under other schemes than Tresor's one level-3 frame per chunk?
//
//   study FILE_LIST MODE...
//
// Reads every file of FILE_LIST (one path per line) into memory, cuts files larger than 256 KiB
// into content-defined chunks of about Tresor's sizes (256 KiB min, 4 MiB max, ~1.25 MiB mean;
// a plain gear hash, not Tresor's FastCDC, so boundaries differ but sizes are alike) and keeps
// smaller files whole, as Tresor does. Chunks that Tresor's CompressibilityProbe would store raw
// (all 4 KiB samples every 32 KiB at >= 7.9 bits/byte, chunks >= 64 KiB) are counted raw. Then,
// per MODE, compresses every other chunk and prints the bytes stored (a frame larger than its
// input counts as the input, as the pack builder stores it raw) and the thread CPU seconds spent
// in zstd, split into small chunks (whole files <= 256 KiB) and large ones.
//
// MODE is comma-separated: `S,L` = zstd levels for small and large chunks, then any of
//   h=N c=N s=N m=N w=N t=N   hashLog, chainLog, searchLog, minMatch, windowLog, strategy for
//                             large chunks (0 = the level's own value)
//   G=KiB                     small chunks concatenated, in file-list order, into solid groups
//                             of at most KiB, one frame per group (a format change: not what
//                             Tresor stores)
//   D=KiB                     small chunks compressed with a dictionary of KiB trained
//                             (ZDICT_trainFromBuffer) on every 4th small chunk (a format change)
//   X                         skip small chunks (large-chunk parameter searches)
// Per-blob overheads (GCM tag and nonce, pack header entry) and tree/index objects are not
// counted: add about 5.6 MB to compare with a real repository of the full corpus.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zdict.h>
#include <zstd.h>

typedef struct {
    const unsigned char *p;
    size_t n;
    int small, random;
} Chunk;

static Chunk *chunks;
static size_t nchunks, capacity;
static uint64_t gear[256];

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Order-0 entropy of 4 KiB at p, bits per byte (CompressibilityProbe.entropy).
static double entropy(const unsigned char *p) {
    unsigned c[256] = {0};
    for (int i = 0; i < 4096; i++) c[p[i]]++;
    double s = 0;
    for (int i = 0; i < 256; i++)
        if (c[i] > 1) s += c[i] * log2(c[i]);
    return 12.0 - s / 4096;
}

static int incompressible(const unsigned char *p, size_t n) {
    if (n < 65536) return 0;
    for (size_t o = 0; o + 4096 <= n; o += 32768)
        if (entropy(p + o) < 7.9) return 0;
    return 1;
}

static void add(const unsigned char *p, size_t n, int small) {
    if (nchunks == capacity) {
        capacity = capacity ? 2 * capacity : 1024;
        chunks = realloc(chunks, capacity * sizeof(Chunk));
    }
    chunks[nchunks++] = (Chunk){p, n, small, incompressible(p, n)};
}

static void cut(const unsigned char *p, size_t n) {
    const size_t min = 262144, max = 4194304;
    const uint64_t mask = ((1ull << 20) - 1) << 20;
    size_t s = 0;
    while (s < n) {
        size_t rest = n - s, limit = rest < max ? rest : max, at = limit;
        if (rest <= min) { add(p + s, rest, 0); break; }
        uint64_t fp = 0;
        for (size_t i = min - 64; i < limit; i++) {
            fp = (fp << 1) + gear[p[s + i]];
            if (i >= min && (fp & mask) == 0) { at = i + 1; break; }
        }
        add(p + s, at, 0);
        s += at;
    }
}

static int option(const char *mode, const char *key) {
    const char *q = strstr(mode, key);
    return q ? atoi(q + strlen(key)) : 0;
}

static size_t check(size_t r) {
    if (ZSTD_isError(r)) { fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(r)); exit(1); }
    return r;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: study FILE_LIST MODE...\n"); return 2; }
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 256; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; gear[i] = x; }
    FILE *list = fopen(argv[1], "r");
    if (!list) { perror(argv[1]); return 1; }
    char path[4096];
    size_t total = 0;
    while (fgets(path, sizeof path, list)) {
        path[strcspn(path, "\n")] = 0;
        FILE *f = fopen(path, "rb");
        if (!f) { perror(path); return 1; }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        unsigned char *b = malloc(n ? n : 1);
        if (fread(b, 1, n, f) != (size_t)n) { perror(path); return 1; }
        fclose(f);
        total += n;
        if (n <= 262144) add(b, n, 1); else cut(b, n);
    }
    size_t bytes[3] = {0}, count[3] = {0};
    for (size_t i = 0; i < nchunks; i++) {
        int k = chunks[i].random ? 2 : chunks[i].small ? 0 : 1;
        bytes[k] += chunks[i].n;
        count[k]++;
    }
    printf("%zu bytes in %zu chunks: small %zu (%.2f MB), large %zu (%.2f MB), probe-raw %zu (%.2f MB)\n",
           total, nchunks, count[0], bytes[0] / 1e6, count[1], bytes[1] / 1e6, count[2], bytes[2] / 1e6);
    size_t cap = ZSTD_compressBound(8 << 20);
    unsigned char *dst = malloc(cap), *group = malloc(8 << 20);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    for (int a = 2; a < argc; a++) {
        const char *mode = argv[a];
        int ls = 3, ll = 3;
        sscanf(mode, "%d,%d", &ls, &ll);
        int G = option(mode, "G="), D = option(mode, "D="), skipSmall = strchr(mode, 'X') != NULL;
        ZSTD_CDict *dict = NULL;
        if (D) {
            size_t ns = 0, tot = 0, k = 0, o = 0;
            for (size_t i = 0; i < nchunks; i++)
                if (chunks[i].small && i % 4 == 0) { ns++; tot += chunks[i].n; }
            unsigned char *samples = malloc(tot), *db = malloc(D * 1024);
            size_t *sizes = malloc(ns * sizeof(size_t));
            for (size_t i = 0; i < nchunks; i++)
                if (chunks[i].small && i % 4 == 0) {
                    memcpy(samples + o, chunks[i].p, chunks[i].n);
                    o += chunks[i].n;
                    sizes[k++] = chunks[i].n;
                }
            double t0 = cpu();
            size_t dn = ZDICT_trainFromBuffer(db, D * 1024, samples, sizes, (unsigned)ns);
            if (ZDICT_isError(dn)) { fprintf(stderr, "dictionary: %s\n", ZDICT_getErrorName(dn)); return 1; }
            dict = ZSTD_createCDict(db, dn, ls);
            printf("  dictionary of %zu bytes trained on %zu chunks (%.1f MB) in %.2f CPU-s (not counted below)\n",
                   dn, ns, tot / 1e6, cpu() - t0);
            free(samples); free(sizes); free(db);
        }
        double tS = 0, tL = 0;
        size_t oS = 0, oL = 0, oR = 0, gn = 0;
        for (size_t i = 0; i <= nchunks; i++) {
            const Chunk *c = i < nchunks ? &chunks[i] : NULL;
            int flush = G && gn && (!c || (c->small && gn + c->n > (size_t)G * 1024));
            if (flush) {
                double t0 = cpu();
                ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
                ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
                ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, ls);
                size_t r = check(ZSTD_compress2(cc, dst, cap, group, gn));
                tS += cpu() - t0;
                oS += r < gn ? r : gn;
                gn = 0;
            }
            if (!c) break;
            if (c->random) { oR += c->n; continue; }
            if (c->small && skipSmall) continue;
            if (c->small && G) { memcpy(group + gn, c->p, c->n); gn += c->n; continue; }
            double t0 = cpu();
            ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
            ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
            size_t r;
            if (c->small && dict) {
                r = check(ZSTD_compress_usingCDict(cc, dst, cap, c->p, c->n, dict));
            } else {
                ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, c->small ? ls : ll);
                if (!c->small) {
                    ZSTD_CCtx_setParameter(cc, ZSTD_c_hashLog, option(mode, "h="));
                    ZSTD_CCtx_setParameter(cc, ZSTD_c_chainLog, option(mode, "c="));
                    ZSTD_CCtx_setParameter(cc, ZSTD_c_searchLog, option(mode, "s="));
                    ZSTD_CCtx_setParameter(cc, ZSTD_c_minMatch, option(mode, "m="));
                    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, option(mode, "w="));
                    ZSTD_CCtx_setParameter(cc, ZSTD_c_strategy, option(mode, "t="));
                }
                r = check(ZSTD_compress2(cc, dst, cap, c->p, c->n));
            }
            double t = cpu() - t0;
            if (c->small) { tS += t; oS += r < c->n ? r : c->n; } else { tL += t; oL += r < c->n ? r : c->n; }
        }
        printf("%-24s small %7.2f MB %5.2f s | large %7.2f MB %5.2f s | raw %7.2f MB | total %8.2f MB, zstd %5.2f CPU-s\n",
               mode, oS / 1e6, tS, oL / 1e6, tL, oR / 1e6, (oS + oL + oR) / 1e6, tS + tL);
        fflush(stdout);
        if (dict) ZSTD_freeCDict(dict);
    }
    return 0;
}
