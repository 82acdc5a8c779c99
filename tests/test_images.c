// test_images.c - the dataset loaders on files written here in the exact
// CIFAR-10 / CIFAR-100 binary and IDX formats (small record counts: the
// loader accepts any whole number of records), as folders, as .tar.gz
// archives built here, plain and gzipped; the error messages for missing,
// truncated, wrong-size, bad-magic and out-of-range files; and the real
// Fashion-MNIST when Debian's package is installed.
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "src/common.h"
#include "src/images.h"
#include "src/rng.h"
#include "tests/test.h"

#define PIXELS 3072

static char tmp_root[256];
static Rng rng;

// ---------------------------------------------------------------------------
// writing files

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Bytes;

static void bytes_append(Bytes *b, const void *src, size_t n) {
    if (n == 0) return;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 4096;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = xfopen(path, "wb");
    if (len) xfwrite(data, len, f, path);
    fclose(f);
}

static void write_gz(const char *path, const void *data, size_t len) {
    gzFile g = gzopen(path, "wb");
    if (!g) die("cannot create %s", path);
    if (len && gzwrite(g, data, (unsigned)len) != (int)len) die("gzwrite %s", path);
    gzclose(g);
}

#define TEST_PATH 1024
static void path_of(char *dst, const char *rel) { snprintf(dst, TEST_PATH, "%s/%s", tmp_root, rel); }

static void make_dir(const char *rel) {
    char p[TEST_PATH];
    path_of(p, rel);
    if (make_dirs(p)) die("mkdir %s", p);
}

static void put(const char *rel, const Bytes *b) {
    char p[TEST_PATH];
    path_of(p, rel);
    write_file(p, b->data, b->len);
}

// One tar entry (ustar header + data padded to 512) of type '0', '5' or 'L'.
static void tar_entry(Bytes *tar, const char *name, const void *data, size_t len, char type) {
    uint8_t h[512] = {0};
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
    snprintf((char *)h + 108, 8, "%07o", 1000);
    snprintf((char *)h + 116, 8, "%07o", 1000);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)len);
    snprintf((char *)h + 136, 12, "%011o", 1300000000);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);  // six digits, NUL, then the space already there
    bytes_append(tar, h, 512);
    if (len) bytes_append(tar, data, len);
    static const uint8_t zeros[512];
    if (len % 512) bytes_append(tar, zeros, 512 - len % 512);
}

static void tar_file(Bytes *tar, const char *name, const Bytes *content) {
    if (strlen(name) >= 100) tar_entry(tar, "././@LongLink", name, strlen(name) + 1, 'L');
    tar_entry(tar, name, content->data, content->len, '0');
}

static void tar_end(Bytes *tar) {
    static const uint8_t zeros[1024];
    bytes_append(tar, zeros, sizeof zeros);
}

// Random CIFAR records; labels from label_ranges[] per label byte.
static void cifar_records(Bytes *b, int count, int label_bytes, const int *label_ranges, Bytes *expect_pixels,
                          Bytes *expect_labels, int expect_label_index) {
    for (int r = 0; r < count; r++) {
        uint8_t rec[2 + PIXELS];
        for (int l = 0; l < label_bytes; l++) rec[l] = (uint8_t)rng_below(&rng, (uint64_t)label_ranges[l]);
        for (int i = 0; i < PIXELS; i++) rec[label_bytes + i] = (uint8_t)rng_u32(&rng);
        bytes_append(b, rec, (size_t)label_bytes + PIXELS);
        if (expect_pixels) bytes_append(expect_pixels, rec + label_bytes, PIXELS);
        if (expect_labels) bytes_append(expect_labels, rec + expect_label_index, 1);
    }
}

static int set_matches(const ImageSet *s, int count, int c, int h, int w, const Bytes *pixels, const Bytes *labels) {
    return s->count == count && s->channels == c && s->height == h && s->width == w &&
           (size_t)count * c * h * w == pixels->len && memcmp(s->pixels, pixels->data, pixels->len) == 0 &&
           memcmp(s->labels, labels->data, labels->len) == 0;
}

static int contains(const char *haystack, const char *needle) { return strstr(haystack, needle) != NULL; }

// images_load must fail with a message containing both needles, leaving the sets empty.
static void expect_error(const char *dataset, const char *dir, int coarse, const char *needle1, const char *needle2,
                         const char *what) {
    ImageSet train, test;
    char err[2048] = "";
    int rc = images_load(&train, &test, dataset, dir, coarse, err, sizeof err);
    CHECK(rc != 0, "%s: expected an error", what);
    CHECK(contains(err, needle1) && (!needle2 || contains(err, needle2)), "%s: message '%s' lacks '%s' / '%s'", what,
          err, needle1, needle2 ? needle2 : "");
    CHECK(train.pixels == NULL && test.pixels == NULL && train.count == 0, "%s: sets not left empty", what);
    CHECK(strchr(err, '\n') == NULL, "%s: message is not one line", what);
    if (rc) printf("  ok error (%s): %s\n", what, err);
    images_free(&train);
    images_free(&test);
}

// ---------------------------------------------------------------------------

static const char *const C10_TRAIN[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                          "data_batch_4.bin", "data_batch_5.bin"};

static void test_cifar10(void) {
    const int counts[5] = {3, 4, 2, 5, 1}, test_count = 6, ten[1] = {10};
    Bytes files[6] = {{0}}, train_px = {0}, train_lb = {0}, test_px = {0}, test_lb = {0};
    for (int f = 0; f < 5; f++) cifar_records(&files[f], counts[f], 1, ten, &train_px, &train_lb, 0);
    cifar_records(&files[5], test_count, 1, ten, &test_px, &test_lb, 0);

    // the extracted folder, reached from its parent and as itself
    make_dir("c10/cifar-10-batches-bin");
    char rel[256], dir[TEST_PATH];
    for (int f = 0; f < 5; f++) {
        snprintf(rel, sizeof rel, "c10/cifar-10-batches-bin/%s", C10_TRAIN[f]);
        put(rel, &files[f]);
    }
    put("c10/cifar-10-batches-bin/test_batch.bin", &files[5]);
    const char *dirs[2] = {"c10", "c10/cifar-10-batches-bin"};
    for (int d = 0; d < 2; d++) {
        ImageSet train, test;
        char err[1024] = "";
        path_of(dir, dirs[d]);
        int rc = images_load(&train, &test, "cifar10", dir, 0, err, sizeof err);
        CHECK(rc == 0, "cifar10 folder %s: %s", dirs[d], err);
        if (rc) continue;
        CHECK(set_matches(&train, 15, 3, 32, 32, &train_px, &train_lb), "cifar10 folder %s: train set differs", dirs[d]);
        CHECK(set_matches(&test, test_count, 3, 32, 32, &test_px, &test_lb), "cifar10 folder %s: test set differs", dirs[d]);
        CHECK(train.num_classes == 10 && test.num_classes == 10, "cifar10 num_classes %d", train.num_classes);
        images_free(&train);
        images_free(&test);
    }

    // the archive as downloaded: members in another order, plus other entries
    Bytes tar = {0}, meta = {0};
    bytes_append(&meta, "airplane\nautomobile\n", 20);
    tar_entry(&tar, "cifar-10-batches-bin/", NULL, 0, '5');
    tar_file(&tar, "cifar-10-batches-bin/batches.meta.txt", &meta);
    tar_file(&tar, "cifar-10-batches-bin/test_batch.bin", &files[5]);
    for (int f = 4; f >= 0; f--) {
        // one member under a directory name longer than a ustar name field
        snprintf(rel, sizeof rel, "%scifar-10-batches-bin/%s",
                 f == 2 ? "a-rather-long-directory-name-that-needs-the-gnu-longlink-extension-of-tar/" : "", C10_TRAIN[f]);
        tar_file(&tar, rel, &files[f]);
    }
    tar_end(&tar);
    make_dir("c10tar");
    path_of(dir, "c10tar/cifar-10-binary.tar.gz");
    write_gz(dir, tar.data, tar.len);
    const char *archive_dirs[2] = {"c10tar", "c10tar/cifar-10-binary.tar.gz"};
    for (int d = 0; d < 2; d++) {
        ImageSet train, test;
        char err[1024] = "";
        path_of(dir, archive_dirs[d]);
        int rc = images_load(&train, &test, "cifar10", dir, 0, err, sizeof err);
        CHECK(rc == 0, "cifar10 archive %s: %s", archive_dirs[d], err);
        if (rc) continue;
        CHECK(set_matches(&train, 15, 3, 32, 32, &train_px, &train_lb), "cifar10 archive: train set differs");
        CHECK(set_matches(&test, test_count, 3, 32, 32, &test_px, &test_lb), "cifar10 archive: test set differs");
        images_free(&train);
        images_free(&test);
    }

    // a single file through the lower-level loader, gzipped
    {
        path_of(dir, "c10/one.bin.gz");
        write_gz(dir, files[5].data, files[5].len);
        ImageSet one;
        char err[1024] = "";
        int rc = images_load_cifar_file(&one, dir, 0, 0, err, sizeof err);
        CHECK(rc == 0 && set_matches(&one, test_count, 3, 32, 32, &test_px, &test_lb), "gzipped single CIFAR file: %s", err);
        images_free(&one);
    }

    // errors
    make_dir("empty");
    path_of(dir, "empty");
    expect_error("cifar10", dir, 0, "scripts/get_data", "cifar-10-binary.tar.gz", "no CIFAR-10 data");

    make_dir("c10bad/cifar-10-batches-bin");
    for (int f = 0; f < 5; f++) {
        if (f == 2) continue;  // data_batch_3.bin missing
        snprintf(rel, sizeof rel, "c10bad/cifar-10-batches-bin/%s", C10_TRAIN[f]);
        put(rel, &files[f]);
    }
    put("c10bad/cifar-10-batches-bin/test_batch.bin", &files[5]);
    path_of(dir, "c10bad");
    expect_error("cifar10", dir, 0, "data_batch_3.bin", "missing", "missing batch");

    Bytes wrong = {0};  // 2 records and 5 stray bytes
    bytes_append(&wrong, files[1].data, 2 * 3073 + 5);
    put("c10bad/cifar-10-batches-bin/data_batch_3.bin", &wrong);
    expect_error("cifar10", dir, 0, "data_batch_3.bin", "3073", "wrong-size batch");

    Bytes bad_label = {0};  // a label of 10 in the test batch
    bytes_append(&bad_label, files[5].data, files[5].len);
    bad_label.data[3073 * 2] = 10;
    put("c10bad/cifar-10-batches-bin/data_batch_3.bin", &files[2]);
    put("c10bad/cifar-10-batches-bin/test_batch.bin", &bad_label);
    expect_error("cifar10", dir, 0, "test_batch.bin", "label 10", "label out of range");

    Bytes empty = {0};
    put("c10bad/cifar-10-batches-bin/test_batch.bin", &empty);
    expect_error("cifar10", dir, 0, "test_batch.bin", "wrong size", "empty batch");

    // archives: truncated, missing a member, not a tar
    make_dir("c10cut");
    gzFile g;
    {
        // compress, then keep only the first half of the .gz bytes
        path_of(dir, "c10cut/full.gz");
        write_gz(dir, tar.data, tar.len);
        FILE *f = xfopen(dir, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *gz = xmalloc((size_t)size);
        xfread(gz, (size_t)size, f, dir);
        fclose(f);
        path_of(dir, "c10cut/cifar-10-binary.tar.gz");
        write_file(dir, gz, (size_t)size / 2);
        free(gz);
        path_of(dir, "c10cut");
        expect_error("cifar10", dir, 0, "cifar-10-binary.tar.gz", "truncated", "truncated archive");
    }
    {
        Bytes partial = {0};
        for (int f = 0; f < 5; f++) {
            if (f == 3) continue;
            snprintf(rel, sizeof rel, "cifar-10-batches-bin/%s", C10_TRAIN[f]);
            tar_file(&partial, rel, &files[f]);
        }
        tar_file(&partial, "cifar-10-batches-bin/test_batch.bin", &files[5]);
        tar_end(&partial);
        make_dir("c10partial");
        path_of(dir, "c10partial/cifar-10-binary.tar.gz");
        write_gz(dir, partial.data, partial.len);
        path_of(dir, "c10partial");
        expect_error("cifar10", dir, 0, "data_batch_4.bin", "not found", "archive missing a member");
        free(partial.data);
    }
    {
        make_dir("c10junk");
        path_of(dir, "c10junk/cifar-10-binary.tar.gz");
        g = gzopen(dir, "wb");
        for (int i = 0; i < 2048; i++) gzputc(g, 'x');
        gzclose(g);
        path_of(dir, "c10junk");
        expect_error("cifar10", dir, 0, "cifar-10-binary.tar.gz", "not a tar", "not a tar archive");
    }
    for (int f = 0; f < 6; f++) free(files[f].data);
    free(train_px.data);
    free(train_lb.data);
    free(test_px.data);
    free(test_lb.data);
    free(tar.data);
    free(meta.data);
    free(wrong.data);
    free(bad_label.data);
}

static void test_cifar100(void) {
    const int ranges[2] = {20, 100};
    Bytes train_file = {0}, test_file = {0};
    Bytes train_px = {0}, test_px = {0};
    cifar_records(&train_file, 7, 2, ranges, &train_px, NULL, 0);
    cifar_records(&test_file, 3, 2, ranges, &test_px, NULL, 0);
    // expected labels: fine = byte 1, coarse = byte 0 of each record
    Bytes fine_tr = {0}, coarse_tr = {0}, fine_te = {0}, coarse_te = {0};
    for (int r = 0; r < 7; r++) {
        bytes_append(&coarse_tr, train_file.data + r * 3074, 1);
        bytes_append(&fine_tr, train_file.data + r * 3074 + 1, 1);
    }
    for (int r = 0; r < 3; r++) {
        bytes_append(&coarse_te, test_file.data + r * 3074, 1);
        bytes_append(&fine_te, test_file.data + r * 3074 + 1, 1);
    }
    make_dir("c100/cifar-100-binary");
    put("c100/cifar-100-binary/train.bin", &train_file);
    put("c100/cifar-100-binary/test.bin", &test_file);
    Bytes tar = {0};
    tar_entry(&tar, "cifar-100-binary/", NULL, 0, '5');
    tar_file(&tar, "cifar-100-binary/test.bin", &test_file);
    tar_file(&tar, "cifar-100-binary/train.bin", &train_file);
    tar_end(&tar);
    make_dir("c100tar");
    char dir[TEST_PATH];
    path_of(dir, "c100tar/cifar-100-binary.tar.gz");
    write_gz(dir, tar.data, tar.len);

    const char *dirs[2] = {"c100", "c100tar"};
    for (int d = 0; d < 2; d++) {
        for (int coarse = 0; coarse <= 1; coarse++) {
            ImageSet train, test;
            char err[1024] = "";
            path_of(dir, dirs[d]);
            int rc = images_load(&train, &test, "cifar100", dir, coarse, err, sizeof err);
            CHECK(rc == 0, "cifar100 %s coarse=%d: %s", dirs[d], coarse, err);
            if (rc) continue;
            CHECK(set_matches(&train, 7, 3, 32, 32, &train_px, coarse ? &coarse_tr : &fine_tr),
                  "cifar100 %s coarse=%d: train set differs", dirs[d], coarse);
            CHECK(set_matches(&test, 3, 3, 32, 32, &test_px, coarse ? &coarse_te : &fine_te),
                  "cifar100 %s coarse=%d: test set differs", dirs[d], coarse);
            CHECK(train.num_classes == (coarse ? 20 : 100), "cifar100 num_classes %d", train.num_classes);
            images_free(&train);
            images_free(&test);
        }
    }
    // a fine label of 100, then a coarse label of 20
    make_dir("c100bad/cifar-100-binary");
    put("c100bad/cifar-100-binary/train.bin", &train_file);
    Bytes bad = {0};
    bytes_append(&bad, test_file.data, test_file.len);
    bad.data[3074 + 1] = 100;
    put("c100bad/cifar-100-binary/test.bin", &bad);
    path_of(dir, "c100bad");
    expect_error("cifar100", dir, 0, "test.bin", "fine label 100", "cifar100 fine label out of range");
    bad.data[3074 + 1] = 5;
    bad.data[0] = 20;
    put("c100bad/cifar-100-binary/test.bin", &bad);
    expect_error("cifar100", dir, 1, "test.bin", "coarse label 20", "cifar100 coarse label out of range");
    // a CIFAR-10 batch (3073-byte records) where CIFAR-100 is expected
    Bytes c10 = {0};
    const int ten[1] = {10};
    cifar_records(&c10, 4, 1, ten, NULL, NULL, 0);
    put("c100bad/cifar-100-binary/test.bin", &c10);
    expect_error("cifar100", dir, 0, "test.bin", "3074-byte", "cifar100 wrong record size");

    free(train_file.data);
    free(test_file.data);
    free(train_px.data);
    free(test_px.data);
    free(fine_tr.data);
    free(coarse_tr.data);
    free(fine_te.data);
    free(coarse_te.data);
    free(tar.data);
    free(bad.data);
    free(c10.data);
}

static void be32(Bytes *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bytes_append(b, x, 4);
}

static void idx_images(Bytes *b, uint32_t magic, int n, int rows, int cols, Bytes *expect) {
    be32(b, magic);
    be32(b, (uint32_t)n);
    be32(b, (uint32_t)rows);
    be32(b, (uint32_t)cols);
    for (int i = 0; i < n * rows * cols; i++) {
        uint8_t p = (uint8_t)rng_u32(&rng);
        bytes_append(b, &p, 1);
        if (expect) bytes_append(expect, &p, 1);
    }
}

static void idx_labels(Bytes *b, int n, Bytes *expect) {
    be32(b, 0x00000801);
    be32(b, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t l = (uint8_t)rng_below(&rng, 10);
        bytes_append(b, &l, 1);
        if (expect) bytes_append(expect, &l, 1);
    }
}

// Writes the four IDX files into rel (gzipped with .gz names when gz).
static void put_idx(const char *rel, int gz, const Bytes *files[4]) {
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                   "t10k-labels-idx1-ubyte"};
    make_dir(rel);
    for (int f = 0; f < 4; f++) {
        if (!files[f]) continue;
        char p[TEST_PATH], name[600];
        snprintf(name, sizeof name, "%s/%s%s", rel, names[f], gz ? ".gz" : "");
        path_of(p, name);
        if (gz)
            write_gz(p, files[f]->data, files[f]->len);
        else
            write_file(p, files[f]->data, files[f]->len);
    }
}

static void test_idx(void) {
    Bytes tr_img = {0}, tr_lab = {0}, te_img = {0}, te_lab = {0};
    Bytes tr_px = {0}, tr_lb = {0}, te_px = {0}, te_lb = {0};
    idx_images(&tr_img, 0x00000803, 5, 4, 3, &tr_px);  // 4 rows x 3 columns: not square on purpose
    idx_labels(&tr_lab, 5, &tr_lb);
    idx_images(&te_img, 0x00000803, 2, 4, 3, &te_px);
    idx_labels(&te_lab, 2, &te_lb);
    const Bytes *good[4] = {&tr_img, &tr_lab, &te_img, &te_lab};
    put_idx("mnist_plain", 0, good);
    put_idx("mnist_gz/mnist", 1, good);  // found as D/mnist

    const char *dirs[2] = {"mnist_plain", "mnist_gz"};
    for (int d = 0; d < 2; d++) {
        ImageSet train, test;
        char err[1024] = "", dir[TEST_PATH];
        path_of(dir, dirs[d]);
        int rc = images_load(&train, &test, "mnist", dir, 0, err, sizeof err);
        CHECK(rc == 0, "mnist %s: %s", dirs[d], err);
        if (rc) continue;
        CHECK(set_matches(&train, 5, 1, 4, 3, &tr_px, &tr_lb), "mnist %s: train set differs", dirs[d]);
        CHECK(set_matches(&test, 2, 1, 4, 3, &te_px, &te_lb), "mnist %s: test set differs", dirs[d]);
        CHECK(train.num_classes == 10, "mnist num_classes %d", train.num_classes);
        images_free(&train);
        images_free(&test);
    }

    char dir[TEST_PATH];
    path_of(dir, "empty");
    expect_error("mnist", dir, 0, "train-images-idx3-ubyte", "download", "no mnist data");

    const Bytes *no_test_labels[4] = {&tr_img, &tr_lab, &te_img, NULL};
    put_idx("mnist_missing", 0, no_test_labels);
    path_of(dir, "mnist_missing");
    expect_error("mnist", dir, 0, "t10k-labels-idx1-ubyte", "missing", "missing IDX file");

    Bytes bad_magic = {0};
    idx_images(&bad_magic, 0x00000801, 5, 4, 3, NULL);
    const Bytes *f1[4] = {&bad_magic, &tr_lab, &te_img, &te_lab};
    put_idx("mnist_magic", 0, f1);
    path_of(dir, "mnist_magic");
    expect_error("mnist", dir, 0, "train-images-idx3-ubyte", "bad magic", "IDX bad magic");

    Bytes truncated = {0};
    bytes_append(&truncated, tr_img.data, tr_img.len - 7);
    const Bytes *f2[4] = {&truncated, &tr_lab, &te_img, &te_lab};
    put_idx("mnist_trunc", 1, f2);
    path_of(dir, "mnist_trunc");
    expect_error("mnist", dir, 0, "train-images-idx3-ubyte.gz", "truncated", "IDX truncated images");

    Bytes longer = {0};
    bytes_append(&longer, te_img.data, te_img.len);
    bytes_append(&longer, "extra", 5);
    const Bytes *f3[4] = {&tr_img, &tr_lab, &longer, &te_lab};
    put_idx("mnist_long", 0, f3);
    path_of(dir, "mnist_long");
    expect_error("mnist", dir, 0, "t10k-images-idx3-ubyte", "wrong size", "IDX trailing bytes");

    Bytes three_labels = {0};
    idx_labels(&three_labels, 3, NULL);
    const Bytes *f4[4] = {&tr_img, &tr_lab, &te_img, &three_labels};
    put_idx("mnist_count", 0, f4);
    path_of(dir, "mnist_count");
    expect_error("mnist", dir, 0, "t10k-labels-idx1-ubyte", "count mismatch", "IDX image/label count mismatch");

    Bytes label_11 = {0};
    bytes_append(&label_11, tr_lab.data, tr_lab.len);
    label_11.data[8 + 3] = 11;
    const Bytes *f5[4] = {&tr_img, &label_11, &te_img, &te_lab};
    put_idx("mnist_label", 0, f5);
    path_of(dir, "mnist_label");
    expect_error("mnist", dir, 0, "train-labels-idx1-ubyte", "out of range", "IDX label out of range");

    {
        // a gzip stream cut short: zlib must report it, not return short data silently
        put_idx("mnist_cutgz", 1, good);
        char p[TEST_PATH];
        path_of(p, "mnist_cutgz/train-images-idx3-ubyte.gz");
        FILE *f = xfopen(p, "rb");
        uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        write_file(p, buf, n - 6);  // drop most of the 8-byte gzip trailer
        path_of(dir, "mnist_cutgz");
        expect_error("mnist", dir, 0, "train-images-idx3-ubyte.gz", "gzip", "truncated gzip stream");
    }
    expect_error("imagenet", dir, 0, "unknown dataset", "imagenet", "unknown dataset");

    Bytes *all[] = {&tr_img, &tr_lab, &te_img, &te_lab, &tr_px, &tr_lb, &te_px, &te_lb, &bad_magic, &truncated,
                    &longer, &three_labels, &label_11};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->data);
}

static void test_fashion_mnist(void) {
    char probe[TEST_PATH];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", FASHION_MNIST_SYSTEM_DIR);
    if (access(probe, R_OK) != 0) {
        printf("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)\n");
        return;
    }
    // through the fallback: a data directory without the files
    char dir[TEST_PATH];
    path_of(dir, "empty");
    ImageSet train, test;
    char err[1024] = "";
    double t0 = now_seconds();
    int rc = images_load(&train, &test, "fashion-mnist", dir, 0, err, sizeof err);
    double seconds = now_seconds() - t0;
    CHECK(rc == 0, "fashion-mnist: %s", err);
    if (rc) return;
    printf("fashion-mnist loaded from %s in %.2f s\n", FASHION_MNIST_SYSTEM_DIR, seconds);
    CHECK(train.count == 60000 && test.count == 10000, "fashion-mnist counts %d %d", train.count, test.count);
    CHECK(train.channels == 1 && train.height == 28 && train.width == 28 && test.height == 28 && test.width == 28,
          "fashion-mnist geometry %dx%dx%d", train.channels, train.height, train.width);
    int per_class_train[256] = {0}, per_class_test[256] = {0}, max_label = 0;
    for (int i = 0; i < train.count; i++) {
        per_class_train[train.labels[i]]++;
        if (train.labels[i] > max_label) max_label = train.labels[i];
    }
    for (int i = 0; i < test.count; i++) {
        per_class_test[test.labels[i]]++;
        if (test.labels[i] > max_label) max_label = test.labels[i];
    }
    CHECK(max_label < 10, "fashion-mnist label %d", max_label);
    int balanced = 1;
    for (int k = 0; k < 10; k++) balanced &= per_class_train[k] == 6000 && per_class_test[k] == 1000;
    CHECK(balanced, "fashion-mnist classes are not 6000 / 1000 each");
    double sum = 0;
    for (size_t i = 0; i < (size_t)train.count * 784; i++) sum += train.pixels[i];
    double mean = sum / ((double)train.count * 784) / 255.0;
    float m[3], s[3];
    CHECK(images_normalization("fashion-mnist", m, s) == 1 && fabs(mean - m[0]) < 0.001,
          "fashion-mnist pixel mean %.4f vs constant %.4f", mean, m[0]);
    images_free(&train);
    images_free(&test);
}

static void test_normalization(void) {
    float m[3], s[3];
    CHECK(images_normalization("cifar10", m, s) == 3 && m[0] == 0.4914f && m[2] == 0.4465f && s[1] == 0.1994f,
          "cifar10 constants");
    CHECK(images_normalization("cifar100", m, s) == 3 && m[1] == 0.4867f && s[2] == 0.2761f, "cifar100 constants");
    CHECK(images_normalization("fashion-mnist", m, s) == 1 && m[0] == 0.2860f && s[0] == 0.3530f, "fashion constants");
    CHECK(images_normalization("mnist", m, s) == 1 && m[0] == 0.1307f && s[0] == 0.3081f, "mnist constants");
    CHECK(images_normalization("svhn", m, s) == 0, "unknown dataset has constants");
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/test_images_XXXXXX");
    if (!mkdtemp(tmp_root)) die("mkdtemp failed");
    rng_seed(&rng, 20240607);
    test_normalization();
    test_cifar10();
    test_cifar100();
    test_idx();
    test_fashion_mnist();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp_root);
    return test_summary("test_images");
}
