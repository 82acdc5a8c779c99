// ckpt.c - see ckpt.h
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"

static const char CKPT_MAGIC[8] = "ATXCKPT";
enum { CKPT_VERSION = 1 };

typedef struct {
    char magic[8];
    uint32_t version;
    char kind[8];
    int32_t shape[CKPT_SHAPE_INTS];
    int64_t step;
    uint64_t num_params, state_bytes;
} CkptHeader;

// fwrite that also updates the running checksum
static int put(FILE *f, uLong *crc, const void *p, size_t n) {
    for (size_t done = 0; done < n;) {   // crc32 takes uInt lengths
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        *crc = crc32(*crc, (const Bytef *)p + done, (uInt)chunk);
        done += chunk;
    }
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

int ckpt_save(const char *path, const CkptInfo *info, const Backend *be, const real *params,
              const real *m, const real *v, size_t num_params, const void *state,
              size_t state_bytes, char *err, size_t errlen) {
    if (sizeof(real) != sizeof(float)) {
        snprintf(err, errlen, "checkpoints hold float parameters");
        return -1;
    }
    CkptHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, sizeof h.magic);
    h.version = CKPT_VERSION;
    memcpy(h.kind, info->kind, sizeof h.kind);
    memcpy(h.shape, info->shape, sizeof h.shape);
    h.step = info->step;
    h.num_params = num_params;
    h.state_bytes = state_bytes;

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot write checkpoint %s: %s", tmp, strerror(errno));
        return -1;
    }
    real *host = xmalloc(num_params * sizeof(real));
    uLong crc = crc32(0L, Z_NULL, 0);
    int bad = put(f, &crc, &h, sizeof h);
    const real *blocks[3] = {params, m, v};
    for (int k = 0; k < 3 && !bad; k++) {
        be->download(host, blocks[k], num_params * sizeof(real));
        bad = put(f, &crc, host, num_params * sizeof(real));
    }
    free(host);
    if (!bad) bad = put(f, &crc, state, state_bytes);
    uint32_t crc32v = (uint32_t)crc;
    if (!bad) bad = fwrite(&crc32v, sizeof crc32v, 1, f) != 1;
    if (!bad) bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int saved_errno = errno;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        if (!bad) saved_errno = errno;
        snprintf(err, errlen, "cannot write checkpoint %s: %s (the previous checkpoint is kept)",
                 path, strerror(saved_errno ? saved_errno : EIO));
        unlink(tmp);
        return -1;
    }
    // make the rename itself durable
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

// fread that also updates the running checksum; 0 on success
static int get(FILE *f, uLong *crc, void *p, size_t n) {
    if (fread(p, 1, n, f) != n) return -1;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        *crc = crc32(*crc, (const Bytef *)p + done, (uInt)chunk);
        done += chunk;
    }
    return 0;
}

int ckpt_read(const char *path, CkptInfo *info, const Backend *be, real *params, real *m, real *v,
              size_t num_params, void *state, size_t state_bytes, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno));
        return -1;
    }
    real *host = NULL;
    CkptHeader h;
    uLong crc = crc32(0L, Z_NULL, 0);
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); goto fail; } while (0)
    if (get(f, &crc, &h, sizeof h)) FAIL("checkpoint %s is truncated", path);
    if (memcmp(h.magic, CKPT_MAGIC, sizeof h.magic)) FAIL("%s is not a checkpoint (bad magic)", path);
    if (h.version != CKPT_VERSION)
        FAIL("checkpoint %s has version %u; this build reads version %d", path, h.version, CKPT_VERSION);
    if (strncmp(h.kind, info->kind, sizeof h.kind))
        FAIL("checkpoint %s is a %.8s checkpoint, not %.8s", path, h.kind, info->kind);
    for (int k = 0; k < CKPT_SHAPE_INTS; k++) {
        if (h.shape[k] != info->shape[k])
            FAIL("checkpoint %s has %s=%d, but the model has %d", path,
                 info->shape_names[k] ? info->shape_names[k] : "a shape entry", h.shape[k],
                 info->shape[k]);
    }
    if (h.num_params != num_params || h.state_bytes != state_bytes)
        FAIL("checkpoint %s holds %llu parameters and %llu state bytes, expected %zu and %zu", path,
             (unsigned long long)h.num_params, (unsigned long long)h.state_bytes, num_params,
             state_bytes);
    host = xmalloc(num_params * sizeof(real));
    real *blocks[3] = {params, m, v};
    for (int k = 0; k < 3; k++) {
        if (get(f, &crc, host, num_params * sizeof(real))) FAIL("checkpoint %s is truncated", path);
        be->upload(blocks[k], host, num_params * sizeof(real));
    }
    if (get(f, &crc, state, state_bytes)) FAIL("checkpoint %s is truncated", path);
    uint32_t stored;
    if (fread(&stored, sizeof stored, 1, f) != 1) FAIL("checkpoint %s is truncated", path);
    if (stored != (uint32_t)crc) FAIL("checkpoint %s is corrupt (checksum mismatch)", path);
    char extra;
    if (fread(&extra, 1, 1, f) == 1) FAIL("checkpoint %s has trailing bytes", path);
#undef FAIL
    free(host);
    fclose(f);
    info->step = h.step;
    return 0;
fail:
    free(host);
    fclose(f);
    return -1;
}

void ckpt_load(const char *path, CkptInfo *info, const Backend *be, real *params, real *m, real *v,
               size_t num_params, void *state, size_t state_bytes) {
    char err[4400];
    if (ckpt_read(path, info, be, params, m, v, num_params, state, state_bytes, err, sizeof err))
        die("%s", err);
}
