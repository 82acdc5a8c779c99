// augment.h - seeded train-time augmentation of uint8 (C, H, W) images, the
// pipeline of kentaroy47/vision-transformers-cifar10 (vit_small.md):
//   RandAugment(N, M) -> RandomCrop(H x W, padding, zero fill)
//   -> RandomHorizontalFlip(0.5) -> float (pixel/255 - mean[c]) / std[c].
// Test images are only normalised.
//
// RandAugment as that repository's randomaug.py does it (read at commit
// 8c8e0e9; its history has no other semantic change):
//   - N ops are drawn uniformly WITH replacement from the 16 below
//     (random.choices), and every drawn op is applied (probability 1);
//   - the magnitude is NOT randomised: value = (M / 30) * (max - min) + min
//     with each op's (min, max) from its augment_list():
//       AutoContrast, Equalize, Invert (0, 1)  value unused
//       Rotate      (0, 30)   degrees, sign flipped with probability 1/2
//       Posterize   (0, 4)    bits kept = max(1, int(value))  (M=14 -> 1 bit)
//       Solarize    (0, 256)  threshold: p < t kept, else 255 - p (M=0 inverts all)
//       SolarizeAdd (0, 110)  p = min(255, int(p + value)), then Solarize(128)
//       Color, Contrast, Brightness, Sharpness (0.1, 1.9)  enhance factor,
//                             no sign flip (M=15 is the identity, M=0 factor 0.1)
//       ShearX, ShearY (0, 0.3)  shear factor, sign flipped with probability 1/2
//       CutoutAbs   (0, 40)   side v: a (floor(v)+1)-pixel square (clipped) of
//                             colour (125, 123, 114); M=0 still paints 1 pixel
//       TranslateXabs, TranslateYabs (0, 100)  ABSOLUTE pixels, sign flipped
//                             with probability 1/2 (M=14: 46.7 px, more than a
//                             32-px image, so the result is all zero - as in
//                             the reference, whose ranges were made for 331-px
//                             ImageNet images).
// The ops follow PIL (Pillow) semantics: lookup tables as ImageOps builds them,
// ImageEnhance as Image.blend(degenerate, image, factor) in float with
// truncation, RGB->L luma (R*19595 + G*38470 + B*7471 + 2^15) >> 16, affine
// transforms with nearest resampling sampling at pixel centres (with PIL's
// 16.16 fixed point for rotations and shears) and fill 0, rotation
// counter-clockwise about (W/2, H/2) without expanding. Deviations (see
// augment.c): Sharpness's SMOOTH filter sums in a fixed float order (a pixel at
// an exact .5 rounding tie may differ by 1 from some Pillow builds); grayscale
// images are our extension (PIL's Cutout would reject an "L" image: we fill
// with the luma of the colour, 123; Color is the identity).
//
// Randomness: image `index` in epoch `epoch` draws everything from one Rng
// seeded with augment_stream(seed, epoch, index), so a batch's result does not
// depend on the batch composition, the order, or the number of threads.
#ifndef AUGMENT_H
#define AUGMENT_H

#include <stdint.h>

#include "images.h"
#include "rng.h"

typedef enum {
    AUG_AUTOCONTRAST,
    AUG_EQUALIZE,
    AUG_INVERT,
    AUG_ROTATE,
    AUG_POSTERIZE,
    AUG_SOLARIZE,
    AUG_SOLARIZE_ADD,
    AUG_COLOR,
    AUG_CONTRAST,
    AUG_BRIGHTNESS,
    AUG_SHARPNESS,
    AUG_SHEAR_X,
    AUG_SHEAR_Y,
    AUG_CUTOUT_ABS,
    AUG_TRANSLATE_X_ABS,
    AUG_TRANSLATE_Y_ABS,
    AUG_NUM_OPS
} AugOp;

#define AUG_MAX_MAGNITUDE 30

typedef struct {
    int randaug_n;     // RandAugment ops per image (0: no RandAugment)
    int randaug_m;     // RandAugment magnitude, 0..30
    int crop_padding;  // RandomCrop to the input size after zero padding (0: no crop)
    int hflip;         // RandomHorizontalFlip(0.5) (0: off)
    float mean[3], std[3];  // Normalize, per channel
} AugmentConfig;

// One image in place: px holds c planes of h x w bytes.
typedef struct {
    uint8_t *px;
    int c, h, w;
} AugImage;

// The dataset's default augmentation: for CIFAR-10/100 the repository's
// recipe, RandAugment(2, 14), crop padding 4, flip on; for every other dataset
// (MNIST, Fashion-MNIST: flips and crops change digits and clothes) none.
// Then the dataset's normalisation (images_normalization); unknown datasets
// get mean 0.5, std 0.5.
void augment_config_default(AugmentConfig *cfg, const char *dataset);

// Augments and normalises images indices[0..n-1] of `set` (indices NULL:
// images 0..n-1) into out (n x C x H x W floats), in parallel with OpenMP.
// train = 0: normalise only. Dies on an unsupported configuration (C not 1
// or 3, M outside 0..30).
void augment_batch(const ImageSet *set, const int *indices, int n, int train, const AugmentConfig *cfg,
                   uint64_t seed, int epoch, float *out);

// Images per second of augment_batch(train = 1) over `rounds` batches of
// `batch` images of `set` (after one warm-up batch), with the current OpenMP
// thread count.
double augment_benchmark(const ImageSet *set, const AugmentConfig *cfg, int batch, int rounds);

// ---- building blocks (used by augment_batch; exposed for tests) ----

uint64_t augment_stream(uint64_t seed, int epoch, long index);

// The whole train pipeline on one uint8 image in place, drawing from rng;
// scratch holds c*h*w bytes.
void augment_image_u8(AugImage img, const AugmentConfig *cfg, Rng *rng, uint8_t *scratch);

// (pixel/255 - mean[c]) / std[c] in float, as ToTensor + Normalize compute it.
void augment_normalize(const uint8_t *px, int c, int h, int w, const AugmentConfig *cfg, float *out);

const char *aug_op_name(AugOp op);
// The op's parameter at magnitude m (0..30), before any random sign.
double aug_op_value(AugOp op, int magnitude);
// Applies one RandAugment op with that parameter, drawing its random sign or
// position from rng as the reference does; scratch holds c*h*w bytes.
void aug_apply_op(AugOp op, double value, AugImage img, uint8_t *scratch, Rng *rng);

// The ops with explicit parameters (no randomness); geometric ones need scratch.
void aug_autocontrast(AugImage img);
void aug_equalize(AugImage img);
void aug_invert(AugImage img);
void aug_posterize(AugImage img, int bits);
void aug_solarize(AugImage img, double threshold);
void aug_solarize_add(AugImage img, double addition, double threshold);
void aug_color(AugImage img, double factor);
void aug_contrast(AugImage img, double factor);
void aug_brightness(AugImage img, double factor);
void aug_sharpness(AugImage img, double factor, uint8_t *scratch);
// Output pixel (x, y) takes the input at floor(a x' + b y' + c, d x' + e y' + f)
// with x' = x + 0.5, y' = y + 0.5; 0 where that falls outside.
void aug_affine(AugImage img, const double coeffs[6], uint8_t *scratch);
void aug_rotate(AugImage img, double degrees, uint8_t *scratch);  // counter-clockwise
void aug_shear_x(AugImage img, double factor, uint8_t *scratch);   // coeffs (1, v, 0, 0, 1, 0)
void aug_shear_y(AugImage img, double factor, uint8_t *scratch);   // coeffs (1, 0, 0, v, 1, 0)
void aug_translate_x(AugImage img, double pixels, uint8_t *scratch);  // content moves left by pixels
void aug_translate_y(AugImage img, double pixels, uint8_t *scratch);  // content moves up by pixels
// PIL ImageDraw.rectangle fill: columns x0..x1 and rows y0..y1 inclusive,
// clipped, with the cutout colour.
void aug_fill_box(AugImage img, int x0, int y0, int x1, int y1);
// out(y, x) = in(y + top - padding, x + left - padding), zero outside;
// top and left are in 0..2*padding.
void aug_crop_padded(AugImage img, int padding, int top, int left, uint8_t *scratch);
void aug_hflip(AugImage img);

#endif
