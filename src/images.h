// images.h - image classification datasets in memory: CIFAR-10, CIFAR-100,
// MNIST and Fashion-MNIST, read from the files as distributed.
//
// A set holds N images as uint8 pixels, each image channel-planar (C, H, W)
// with row-major planes (the CIFAR record layout), plus one uint8 label each.
//
// Where images_load looks, for a data directory D (NULL or "" means "data"):
//   cifar10 / cifar100, first match wins:
//     1. D itself is the extracted folder (D/data_batch_1.bin, D/train.bin)
//     2. D is its parent (D/cifar-10-batches-bin/, D/cifar-100-binary/)
//     3. D holds the archive as downloaded (D/cifar-10-binary.tar.gz,
//        D/cifar-100-binary.tar.gz), read through zlib without unpacking
//     4. D is the archive file itself
//   mnist / fashion-mnist (each file plain or .gz, plain tried first):
//     1. D (D/train-images-idx3-ubyte[.gz] ...)
//     2. D/mnist or D/fashion-mnist
//     3. fashion-mnist only: /usr/share/datasets/fashion-mnist (Debian's
//        dataset-fashion-mnist package)
// A CIFAR file may hold any whole number of records (the real batches hold
// 10,000 each), so small test files need no padding; the counts are reported
// by the caller if it cares.
#ifndef IMAGES_H
#define IMAGES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int count;                   // number of images N
    int channels, height, width; // C, H, W of every image
    int num_classes;             // labels are < num_classes
    uint8_t *pixels;             // N * C * H * W bytes
    uint8_t *labels;             // N bytes
} ImageSet;

#define FASHION_MNIST_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

static inline size_t image_bytes(const ImageSet *set) {
    return (size_t)set->channels * (size_t)set->height * (size_t)set->width;
}

static inline const uint8_t *image_pixels(const ImageSet *set, long index) {
    return set->pixels + (size_t)index * image_bytes(set);
}

// Loads the train and test split of `dataset` (cifar10, cifar100, mnist,
// fashion-mnist). coarse_labels selects CIFAR-100's 20 superclasses instead
// of the 100 fine classes (ignored for other datasets). Returns 0, or -1 with
// a one-line message in err naming the file and what is wrong; on error both
// sets are left empty.
int images_load(ImageSet *train, ImageSet *test, const char *dataset, const char *data_dir,
                int coarse_labels, char *err, size_t errlen);

void images_free(ImageSet *set);

// The per-channel Normalize constants the training recipe uses for `dataset`
// (mean and std of pixel/255). Returns the channel count (3 or 1), or 0 for
// an unknown dataset name.
int images_normalization(const char *dataset, float mean[3], float std[3]);

// Lower-level loaders, used by images_load and the tests.

// One CIFAR binary file, plain or gzip-compressed. cifar100 = 0: records of
// 1 label byte + 3072 pixels; cifar100 = 1: coarse byte, fine byte, pixels.
int images_load_cifar_file(ImageSet *set, const char *path, int cifar100, int coarse_labels,
                           char *err, size_t errlen);

// An IDX image file and its IDX label file, each plain or gzip-compressed.
int images_load_idx(ImageSet *set, const char *images_path, const char *labels_path,
                    int num_classes, char *err, size_t errlen);

#endif
