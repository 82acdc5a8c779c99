// images.c - see images.h. Every file goes through zlib's gzread, which reads
// gzip-compressed and plain files alike; a .tar.gz is walked header by header
// (512-byte ustar blocks) and the wanted members are picked by basename.
#define _POSIX_C_SOURCE 200809L
#include "images.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common.h"

#define PATH_BYTES 4096

static int set_error(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void images_free(ImageSet *set) {
    free(set->pixels);
    free(set->labels);
    memset(set, 0, sizeof *set);
}

// ---------------------------------------------------------------------------
// paths

static int join_path(char *dst, const char *dir, const char *name) {
    int n = snprintf(dst, PATH_BYTES, "%s/%s", dir, name);
    return n > 0 && n < PATH_BYTES;
}

static int is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// ---------------------------------------------------------------------------
// reading through zlib

// Reads up to n bytes; the count is short only at the end of the stream.
// Returns -1 on a zlib error (a truncated or corrupt .gz).
static long long gz_read_fully(gzFile g, void *dst, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        int got = gzread(g, (char *)dst + done, (unsigned)chunk);
        if (got < 0) return -1;
        if (got == 0) {
            // Z_BUF_ERROR at the end: the file ended inside a gzip stream
            int errnum = Z_OK;
            gzerror(g, &errnum);
            if (errnum == Z_BUF_ERROR) return -1;
            break;
        }
        done += (size_t)got;
    }
    return (long long)done;
}

static const char *gz_message(gzFile g) {
    int errnum = 0;
    const char *msg = gzerror(g, &errnum);
    return (msg && *msg) ? msg : "read error";
}

// The whole (decompressed) content of a file.
static int read_whole_file(const char *path, uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) return set_error(err, errlen, "missing file %s", path);
    gzFile g = gzopen(path, "rb");
    if (!g) return set_error(err, errlen, "cannot open %s: %s", path, strerror(errno));
    gzbuffer(g, 1 << 18);
    size_t cap = (size_t)st.st_size + 4096, len = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t want = cap - len;
        if (want > (1u << 30)) want = 1u << 30;
        int got = gzread(g, buf + len, (unsigned)want);
        int errnum = Z_OK;
        if (got == 0) gzerror(g, &errnum);  // Z_BUF_ERROR: the file ends inside a gzip stream
        if (got < 0 || errnum == Z_BUF_ERROR) {
            int rc = set_error(err, errlen, "%s: truncated or corrupt gzip data (zlib: %s)", path, gz_message(g));
            gzclose(g);
            free(buf);
            return rc;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    gzclose(g);
    *out = buf;
    *out_len = len;
    return 0;
}

// ---------------------------------------------------------------------------
// tar inside gzip

typedef struct {
    const char *name;  // basename to look for
    uint8_t *data;     // filled in when found
    size_t size;
    int found;
} TarMember;

// A numeric header field: octal digits (space or NUL terminated), or GNU
// base-256 when the top bit of the first byte is set.
static int tar_number(const uint8_t *field, int width, uint64_t *value) {
    uint64_t v = 0;
    if (field[0] & 0x80) {
        for (int i = 1; i < width; i++) v = (v << 8) | field[i];
        *value = v;
        return 0;
    }
    int i = 0;
    while (i < width && field[i] == ' ') i++;
    int digits = 0;
    for (; i < width && field[i] >= '0' && field[i] <= '7'; i++, digits++) v = v * 8 + (uint64_t)(field[i] - '0');
    if (i < width && field[i] != ' ' && field[i] != '\0') return -1;
    *value = v;
    return digits > 0 ? 0 : -1;
}

// The header checksum is the byte sum with the checksum field read as spaces.
static int tar_checksum_ok(const uint8_t *header) {
    uint64_t stored;
    if (tar_number(header + 148, 8, &stored)) return 0;
    uint64_t sum = 0;
    for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? (uint64_t)' ' : header[i];
    return sum == stored;
}

static void tar_field_string(char *dst, const uint8_t *field, int width) {
    int n = 0;
    while (n < width && field[n]) n++;
    memcpy(dst, field, (size_t)n);
    dst[n] = '\0';
}

static const char *basename_of(const char *path) {
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/') n--;  // a directory entry "dir/"
    const char *end = path + n, *p = end;
    while (p > path && p[-1] != '/') p--;
    return p;
}

static int gz_skip(gzFile g, uint64_t bytes) {
    uint8_t sink[1 << 14];
    while (bytes > 0) {
        size_t chunk = bytes < sizeof sink ? (size_t)bytes : sizeof sink;
        if (gz_read_fully(g, sink, chunk) != (long long)chunk) return -1;
        bytes -= chunk;
    }
    return 0;
}

// Reads the wanted regular-file members of a .tar.gz (or plain .tar) in one
// pass, in whatever order the archive stores them. All must be present.
static int tar_read_members(const char *archive, TarMember *members, int count, char *err, size_t errlen) {
    gzFile g = gzopen(archive, "rb");
    if (!g) return set_error(err, errlen, "cannot open %s: %s", archive, strerror(errno));
    gzbuffer(g, 1 << 18);
    uint8_t header[512];
    char name[PATH_BYTES], long_name[PATH_BYTES] = "";
    int remaining = count, rc = 0;
    uint64_t offset = 0;
    while (remaining > 0) {
        long long got = gz_read_fully(g, header, sizeof header);
        if (got == 0) break;  // stream ends without the zero blocks: tolerated
        if (got < 0) {
            rc = set_error(err, errlen, "%s: truncated or corrupt gzip data (zlib: %s)", archive, gz_message(g));
            break;
        }
        if (got < 512) {
            rc = set_error(err, errlen, "%s: truncated archive (partial tar header at byte %llu)", archive,
                           (unsigned long long)offset);
            break;
        }
        int all_zero = 1;
        for (int i = 0; i < 512 && all_zero; i++) all_zero = header[i] == 0;
        if (all_zero) break;  // end-of-archive marker
        uint64_t size;
        if (!tar_checksum_ok(header) || tar_number(header + 124, 12, &size)) {
            rc = set_error(err, errlen, "%s: not a tar.gz archive (bad tar header at byte %llu)", archive,
                           (unsigned long long)offset);
            break;
        }
        uint64_t padded = (size + 511) / 512 * 512;
        char type = (char)header[156];
        offset += 512 + padded;

        if (type == 'L') {  // GNU long name: the data is the next entry's name
            size_t keep = size < sizeof long_name - 1 ? (size_t)size : sizeof long_name - 1;
            if (gz_read_fully(g, long_name, keep) != (long long)keep || gz_skip(g, padded - keep)) {
                rc = set_error(err, errlen, "%s: truncated archive", archive);
                break;
            }
            long_name[keep] = '\0';
            continue;
        }
        if (long_name[0]) {
            snprintf(name, sizeof name, "%s", long_name);
            long_name[0] = '\0';
        } else {
            char base[101], prefix[156];
            tar_field_string(base, header, 100);
            tar_field_string(prefix, header + 345, 155);
            if (memcmp(header + 257, "ustar", 5) == 0 && prefix[0])
                snprintf(name, sizeof name, "%s/%s", prefix, base);
            else
                snprintf(name, sizeof name, "%s", base);
        }

        TarMember *member = NULL;
        if (type == '0' || type == '\0' || type == '7') {
            for (int i = 0; i < count; i++)
                if (!members[i].found && strcmp(basename_of(name), members[i].name) == 0) member = &members[i];
        }
        if (!member) {
            if (gz_skip(g, padded)) {
                rc = set_error(err, errlen, "%s: truncated archive (inside member %s)", archive, name);
                break;
            }
            continue;
        }
        member->data = xmalloc(size ? (size_t)size : 1);
        member->size = (size_t)size;
        member->found = 1;
        remaining--;
        long long read = gz_read_fully(g, member->data, (size_t)size);
        if (read != (long long)size || gz_skip(g, padded - size)) {
            rc = set_error(err, errlen, "%s: truncated archive: member %s holds %lld of its %llu bytes", archive, name,
                           read < 0 ? 0 : read, (unsigned long long)size);
            break;
        }
    }
    gzclose(g);
    for (int i = 0; i < count && rc == 0; i++)
        if (!members[i].found) rc = set_error(err, errlen, "%s: member %s not found in the archive", archive, members[i].name);
    if (rc) {
        for (int i = 0; i < count; i++) {
            free(members[i].data);
            members[i].data = NULL;
            members[i].found = 0;
        }
    }
    return rc;
}

// ---------------------------------------------------------------------------
// CIFAR binary records

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)

typedef struct {
    const char *title;           // for messages
    const char *name;            // the dataset argument
    const char *folder;          // extracted folder
    const char *archive;         // downloaded archive
    const char *train_files[5];  // in the order their records are concatenated
    int train_file_count;
    const char *test_file;
    int label_bytes;             // bytes in front of the pixels of each record
} CifarFormat;

static const CifarFormat CIFAR10_FORMAT = {
    "CIFAR-10", "cifar10", "cifar-10-batches-bin", "cifar-10-binary.tar.gz",
    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}, 5,
    "test_batch.bin", 1,
};

static const CifarFormat CIFAR100_FORMAT = {
    "CIFAR-100", "cifar100", "cifar-100-binary", "cifar-100-binary.tar.gz",
    {"train.bin"}, 1,
    "test.bin", 2,
};

// Checks the record buffers of one split (sizes and labels), then fills
// `set` with their records concatenated in order. names[] label messages.
static int cifar_from_buffers(ImageSet *set, uint8_t *const *bufs, const size_t *sizes, char *const *names,
                              int file_count, const CifarFormat *fmt, int coarse_labels, char *err, size_t errlen) {
    size_t record = (size_t)fmt->label_bytes + CIFAR_PIXELS;
    int label_offset = (fmt->label_bytes == 2 && !coarse_labels) ? 1 : 0;  // CIFAR-100: coarse, fine
    int classes = fmt->label_bytes == 1 ? 10 : (coarse_labels ? 20 : 100);
    size_t total = 0;
    for (int f = 0; f < file_count; f++) {
        if (sizes[f] == 0 || sizes[f] % record != 0)
            return set_error(err, errlen, "%s: wrong size: %zu bytes is not a whole number of %zu-byte %s records%s",
                             names[f], sizes[f], record, fmt->title,
                             sizes[f] % record ? " (truncated or not a binary-version batch)" : "");
        size_t n = sizes[f] / record;
        for (size_t i = 0; i < n; i++) {
            int label = bufs[f][i * record + (size_t)label_offset];
            if (label >= classes)
                return set_error(err, errlen, "%s: record %zu has %s label %d, out of range (expected < %d)", names[f], i,
                                 fmt->label_bytes == 1 ? "a" : (coarse_labels ? "a coarse" : "a fine"), label, classes);
        }
        total += n;
    }
    if (total > INT_MAX) return set_error(err, errlen, "%s: too many records (%zu)", names[0], total);
    set->count = (int)total;
    set->channels = 3;
    set->height = set->width = CIFAR_SIDE;
    set->num_classes = classes;
    set->pixels = xmalloc(total * CIFAR_PIXELS);
    set->labels = xmalloc(total ? total : 1);
    size_t at = 0;
    for (int f = 0; f < file_count; f++) {
        size_t n = sizes[f] / record;
        for (size_t i = 0; i < n; i++, at++) {
            const uint8_t *rec = bufs[f] + i * record;
            set->labels[at] = rec[label_offset];
            memcpy(set->pixels + at * CIFAR_PIXELS, rec + fmt->label_bytes, CIFAR_PIXELS);
        }
    }
    return 0;
}

int images_load_cifar_file(ImageSet *set, const char *path, int cifar100, int coarse_labels, char *err, size_t errlen) {
    memset(set, 0, sizeof *set);
    uint8_t *buf;
    size_t len;
    if (read_whole_file(path, &buf, &len, err, errlen)) return -1;
    char *name = (char *)path;
    int rc = cifar_from_buffers(set, &buf, &len, &name, 1, cifar100 ? &CIFAR100_FORMAT : &CIFAR10_FORMAT,
                                coarse_labels, err, errlen);
    free(buf);
    return rc;
}

// Both splits from the extracted folder or from the archive (see images.h).
static int load_cifar(ImageSet *train, ImageSet *test, const CifarFormat *fmt, const char *dir, int coarse_labels,
                      char *err, size_t errlen) {
    char folder[PATH_BYTES], archive[PATH_BYTES], probe[PATH_BYTES];
    const char *first = fmt->train_files[0];
    int from_archive = 0;
    if (!join_path(probe, dir, first) || !join_path(archive, dir, fmt->archive))
        return set_error(err, errlen, "data directory path too long: %s", dir);
    if (is_regular_file(probe)) {
        snprintf(folder, sizeof folder, "%s", dir);
    } else if (join_path(folder, dir, fmt->folder) && join_path(probe, folder, first) && is_regular_file(probe)) {
        // the parent of the extracted folder
    } else if (is_regular_file(archive)) {
        from_archive = 1;
    } else if (is_regular_file(dir)) {
        snprintf(archive, sizeof archive, "%s", dir);
        from_archive = 1;
    } else {
        return set_error(err, errlen,
                         "no %s data in '%s': looked for %s/%s, %s/%s/%s and %s/%s; get it with scripts/get_data %s "
                         "(or download %s from https://www.cs.toronto.edu/~kriz/ into that directory)",
                         fmt->title, dir, dir, first, dir, fmt->folder, first, dir, fmt->archive, fmt->name,
                         fmt->archive);
    }

    // files[0 .. train_file_count-1] are the train split, the last one the test split
    int n_files = fmt->train_file_count + 1;
    uint8_t *bufs[6] = {0};
    size_t sizes[6] = {0};
    char *names[6] = {0};
    int rc = 0;
    for (int f = 0; f < n_files; f++) {
        const char *file = f < fmt->train_file_count ? fmt->train_files[f] : fmt->test_file;
        names[f] = xmalloc(PATH_BYTES + 256);  // room for "archive:member"
        if (from_archive) {
            snprintf(names[f], PATH_BYTES + 256, "%s:%s", archive, file);
        } else if (!join_path(names[f], folder, file)) {
            rc = set_error(err, errlen, "path too long: %s/%s", folder, file);
        } else if (!is_regular_file(names[f])) {
            rc = set_error(err, errlen, "missing file %s (the %s folder is incomplete; get it again with scripts/get_data %s)",
                           names[f], fmt->title, fmt->name);
        }
    }
    if (rc == 0 && from_archive) {
        TarMember members[6];
        memset(members, 0, sizeof members);
        for (int f = 0; f < n_files; f++) members[f].name = f < fmt->train_file_count ? fmt->train_files[f] : fmt->test_file;
        rc = tar_read_members(archive, members, n_files, err, errlen);
        for (int f = 0; f < n_files && rc == 0; f++) {
            bufs[f] = members[f].data;
            sizes[f] = members[f].size;
        }
    } else if (rc == 0) {
        for (int f = 0; f < n_files && rc == 0; f++) rc = read_whole_file(names[f], &bufs[f], &sizes[f], err, errlen);
    }
    if (rc == 0)
        rc = cifar_from_buffers(train, bufs, sizes, names, fmt->train_file_count, fmt, coarse_labels, err, errlen);
    if (rc == 0)
        rc = cifar_from_buffers(test, bufs + fmt->train_file_count, sizes + fmt->train_file_count,
                                names + fmt->train_file_count, 1, fmt, coarse_labels, err, errlen);
    for (int f = 0; f < n_files; f++) {
        free(bufs[f]);
        free(names[f]);
    }
    return rc;
}

// ---------------------------------------------------------------------------
// IDX (MNIST, Fashion-MNIST)

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

static uint32_t read_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int images_load_idx(ImageSet *set, const char *images_path, const char *labels_path, int num_classes, char *err,
                    size_t errlen) {
    memset(set, 0, sizeof *set);
    uint8_t *images = NULL, *labels = NULL;
    size_t images_len = 0, labels_len = 0;
    int rc = read_whole_file(images_path, &images, &images_len, err, errlen);
    if (rc == 0) rc = read_whole_file(labels_path, &labels, &labels_len, err, errlen);

    uint32_t n_images = 0, rows = 0, cols = 0, n_labels = 0;
    if (rc == 0) {  // images: magic, count, rows, cols, then count*rows*cols bytes
        uint32_t magic = images_len >= 4 ? read_be32(images) : 0;
        if (images_len < 16)
            rc = set_error(err, errlen, "%s: truncated: %zu bytes, shorter than the 16-byte IDX image header", images_path,
                           images_len);
        else if (magic != IDX_IMAGES_MAGIC)
            rc = set_error(err, errlen, "%s: bad magic 0x%08x, expected 0x%08x (IDX uint8 images)%s", images_path, magic,
                           IDX_IMAGES_MAGIC, magic == IDX_LABELS_MAGIC ? "; this is a label file" : "");
        else {
            n_images = read_be32(images + 4);
            rows = read_be32(images + 8);
            cols = read_be32(images + 12);
            uint64_t expected = 16 + (uint64_t)n_images * rows * cols;
            if (n_images == 0 || n_images > INT_MAX || rows == 0 || cols == 0 || rows > 65536 || cols > 65536)
                rc = set_error(err, errlen, "%s: bad IDX header: %u images of %ux%u", images_path, n_images, rows, cols);
            else if (images_len < expected)
                rc = set_error(err, errlen, "%s: truncated: the header promises %u images of %ux%u (%llu bytes) but the file holds %zu bytes",
                               images_path, n_images, rows, cols, (unsigned long long)expected, images_len);
            else if (images_len > expected)
                rc = set_error(err, errlen, "%s: wrong size: %zu bytes, expected %llu for %u images of %ux%u", images_path,
                               images_len, (unsigned long long)expected, n_images, rows, cols);
        }
    }
    if (rc == 0) {  // labels: magic, count, then count bytes
        uint32_t magic = labels_len >= 4 ? read_be32(labels) : 0;
        if (labels_len < 8)
            rc = set_error(err, errlen, "%s: truncated: %zu bytes, shorter than the 8-byte IDX label header", labels_path,
                           labels_len);
        else if (magic != IDX_LABELS_MAGIC)
            rc = set_error(err, errlen, "%s: bad magic 0x%08x, expected 0x%08x (IDX uint8 labels)%s", labels_path, magic,
                           IDX_LABELS_MAGIC, magic == IDX_IMAGES_MAGIC ? "; this is an image file" : "");
        else {
            n_labels = read_be32(labels + 4);
            uint64_t expected = 8 + (uint64_t)n_labels;
            if (labels_len < expected)
                rc = set_error(err, errlen, "%s: truncated: the header promises %u labels but the file holds %zu bytes",
                               labels_path, n_labels, labels_len);
            else if (labels_len > expected)
                rc = set_error(err, errlen, "%s: wrong size: %zu bytes, expected %llu for %u labels", labels_path, labels_len,
                               (unsigned long long)expected, n_labels);
            else if (n_labels != n_images)
                rc = set_error(err, errlen, "image count mismatch: %s holds %u images but %s holds %u labels", images_path,
                               n_images, labels_path, n_labels);
        }
    }
    for (uint32_t i = 0; rc == 0 && i < n_labels; i++)
        if (labels[8 + i] >= num_classes)
            rc = set_error(err, errlen, "%s: label %u of image %u is out of range (expected < %d)", labels_path,
                           labels[8 + i], i, num_classes);
    if (rc) {
        free(images);
        free(labels);
        return rc;
    }
    // keep the read buffers, shifted past their headers
    size_t pixel_bytes = (size_t)n_images * rows * cols;
    memmove(images, images + 16, pixel_bytes);
    memmove(labels, labels + 8, n_labels);
    set->count = (int)n_images;
    set->channels = 1;
    set->height = (int)rows;
    set->width = (int)cols;
    set->num_classes = num_classes;
    set->pixels = images;
    set->labels = labels;
    return 0;
}

static const char *const IDX_FILES[4] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

// dir/name or dir/name.gz, whichever exists (plain first).
static int find_plain_or_gz(char *path, const char *dir, const char *name) {
    char gz_name[256];
    snprintf(gz_name, sizeof gz_name, "%s.gz", name);
    if (join_path(path, dir, name) && is_regular_file(path)) return 1;
    if (join_path(path, dir, gz_name) && is_regular_file(path)) return 1;
    return 0;
}

static int load_idx_dataset(ImageSet *train, ImageSet *test, const char *dataset, const char *dir, char *err,
                            size_t errlen) {
    int fashion = strcmp(dataset, "fashion-mnist") == 0;
    char candidates[3][PATH_BYTES];
    int n_candidates = 0;
    snprintf(candidates[n_candidates++], PATH_BYTES, "%s", dir);
    if (!join_path(candidates[n_candidates++], dir, dataset)) n_candidates--;
    if (fashion) snprintf(candidates[n_candidates++], PATH_BYTES, "%s", FASHION_MNIST_SYSTEM_DIR);

    char paths[4][PATH_BYTES];
    const char *chosen = NULL;
    for (int c = 0; c < n_candidates && !chosen; c++)
        if (find_plain_or_gz(paths[0], candidates[c], IDX_FILES[0])) chosen = candidates[c];
    if (!chosen) {
        if (fashion)
            return set_error(err, errlen,
                             "no fashion-mnist data: looked for %s[.gz] in %s, %s/%s and %s; install it with "
                             "`apt-get install dataset-fashion-mnist` (its files are in %s/)",
                             IDX_FILES[0], dir, dir, dataset, FASHION_MNIST_SYSTEM_DIR, FASHION_MNIST_SYSTEM_DIR);
        return set_error(err, errlen,
                         "no mnist data: looked for %s[.gz] in %s and %s/%s; download the four MNIST IDX files "
                         "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                         "t10k-labels-idx1-ubyte.gz) into %s",
                         IDX_FILES[0], dir, dir, dataset, dir);
    }
    for (int f = 1; f < 4; f++)
        if (!find_plain_or_gz(paths[f], chosen, IDX_FILES[f]))
            return set_error(err, errlen, "missing file %s/%s[.gz] (%s/%s is there; the dataset is incomplete)", chosen,
                             IDX_FILES[f], chosen, basename_of(paths[0]));
    if (images_load_idx(train, paths[0], paths[1], 10, err, errlen)) return -1;
    if (images_load_idx(test, paths[2], paths[3], 10, err, errlen)) return -1;
    if (train->height != test->height || train->width != test->width)
        return set_error(err, errlen, "%s holds %dx%d images but %s holds %dx%d", paths[0], train->height, train->width,
                         paths[2], test->height, test->width);
    return 0;
}

// ---------------------------------------------------------------------------

int images_load(ImageSet *train, ImageSet *test, const char *dataset, const char *data_dir, int coarse_labels,
                char *err, size_t errlen) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!data_dir || !*data_dir) data_dir = "data";
    int rc;
    if (strcmp(dataset, "cifar10") == 0)
        rc = load_cifar(train, test, &CIFAR10_FORMAT, data_dir, 0, err, errlen);
    else if (strcmp(dataset, "cifar100") == 0)
        rc = load_cifar(train, test, &CIFAR100_FORMAT, data_dir, coarse_labels, err, errlen);
    else if (strcmp(dataset, "mnist") == 0 || strcmp(dataset, "fashion-mnist") == 0)
        rc = load_idx_dataset(train, test, dataset, data_dir, err, errlen);
    else
        rc = set_error(err, errlen, "unknown dataset '%s' (expected cifar10, cifar100, mnist or fashion-mnist)", dataset);
    if (rc) {
        images_free(train);
        images_free(test);
    }
    return rc;
}

int images_normalization(const char *dataset, float mean[3], float std[3]) {
    static const struct {
        const char *name;
        int channels;
        float mean[3], std[3];
    } table[] = {
        {"cifar10", 3, {0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}},
        {"cifar100", 3, {0.5071f, 0.4867f, 0.4408f}, {0.2675f, 0.2565f, 0.2761f}},
        {"fashion-mnist", 1, {0.2860f, 0.2860f, 0.2860f}, {0.3530f, 0.3530f, 0.3530f}},
        {"mnist", 1, {0.1307f, 0.1307f, 0.1307f}, {0.3081f, 0.3081f, 0.3081f}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(dataset, table[i].name) == 0) {
            memcpy(mean, table[i].mean, sizeof table[i].mean);
            memcpy(std, table[i].std, sizeof table[i].std);
            return table[i].channels;
        }
    }
    return 0;
}
