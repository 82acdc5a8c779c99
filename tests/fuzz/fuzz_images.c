// fuzz_images.c - the image loaders: CIFAR-10 and CIFAR-100 records, IDX
// image/label pairs (plain or gzip), and CIFAR archives (tar inside gzip).
// The input's first byte chooses the format.
#include "tests/fuzz/fuzz.h"
#include "src/images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    ImageSet a, b;
    char err[512];
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    fuzz_errors_expected = 0;   // the loaders report errors; they must never die
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0:
    case 1: {
        const char *path = fuzz_write_file("cifar.bin", body, n);
        if (images_load_cifar_file(&a, path, data[0] % 2, 0, err, sizeof err) == 0) images_free(&a);
        break;
    }
    case 2: {
        // the first 16 bytes (or fewer) make the label file, the rest the image file
        size_t split = n < 16 ? n : 16;
        char labels[300];
        snprintf(labels, sizeof labels, "%s", fuzz_write_file("labels.idx", body, split));
        const char *images = fuzz_write_file("images.idx", body + split, n - split);
        if (images_load_idx(&a, images, labels, 10, err, sizeof err) == 0) images_free(&a);
        break;
    }
    default: {
        char dir[256];
        snprintf(dir, sizeof dir, "/tmp/fuzz-%d-cifar", (int)getpid());
        mkdir(dir, 0700);
        char path[300];
        snprintf(path, sizeof path, "%s/cifar-10-binary.tar.gz", dir);
        FILE *f = fopen(path, "wb");
        if (!f) abort();
        fwrite(body, 1, n, f);
        fclose(f);
        if (images_load(&a, &b, "cifar10", dir, 0, err, sizeof err) == 0) {
            images_free(&a);
            images_free(&b);
        }
        break;
    }
    }
    return 0;
}
