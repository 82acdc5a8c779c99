// augment.c - see augment.h for the semantics taken from randomaug.py and PIL.
#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static inline size_t plane_size(AugImage img) { return (size_t)img.h * (size_t)img.w; }
static inline size_t image_size(AugImage img) { return plane_size(img) * (size_t)img.c; }

static inline uint8_t clamp_u8(long v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

// PIL's RGB -> L conversion (ITU-R 601-2 luma, rounded).
static inline int luma(int r, int g, int b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }

// PIL's Image.blend(degenerate, image, alpha) for one pixel: computed in float
// and truncated; only extrapolation (alpha outside [0, 1]) needs clipping.
static inline uint8_t blend_pixel(int degenerate, int pixel, float alpha) {
    float v = (float)degenerate + alpha * (float)(pixel - degenerate);
    if (alpha >= 0.0f && alpha <= 1.0f) return (uint8_t)v;
    if (v <= 0.0f) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}

static void apply_lut(uint8_t *plane, size_t n, const uint8_t lut[256]) {
    for (size_t i = 0; i < n; i++) plane[i] = lut[plane[i]];
}

static void histogram(const uint8_t *plane, size_t n, long hist[256]) {
    memset(hist, 0, 256 * sizeof hist[0]);
    for (size_t i = 0; i < n; i++) hist[plane[i]]++;
}

// ---------------------------------------------------------------------------
// colour ops (per-pixel lookup tables, as PIL.ImageOps builds them)

// AutoContrast: per channel, stretch [lowest, highest] present value to
// [0, 255]: lut[i] = int(i * 255/(hi - lo) - lo * 255/(hi - lo)), clipped.
void aug_autocontrast(AugImage img) {
    for (int c = 0; c < img.c; c++) {
        uint8_t *plane = img.px + c * plane_size(img);
        long hist[256];
        histogram(plane, plane_size(img), hist);
        int lo = 0, hi = 255;
        while (lo < 255 && !hist[lo]) lo++;
        while (hi > 0 && !hist[hi]) hi--;
        if (hi <= lo) continue;  // a flat channel is left alone
        double scale = 255.0 / (hi - lo), offset = -lo * scale;
        uint8_t lut[256];
        for (int i = 0; i < 256; i++) lut[i] = clamp_u8((long)(i * scale + offset));
        apply_lut(plane, plane_size(img), lut);
    }
}

// Equalize: per channel, map values through the cumulative histogram so the
// output histogram is roughly flat. PIL's recipe: step = (pixels - count of
// the highest present value) / 256, lut[i] = (step/2 + pixels below i) / step.
void aug_equalize(AugImage img) {
    for (int c = 0; c < img.c; c++) {
        uint8_t *plane = img.px + c * plane_size(img);
        long hist[256];
        histogram(plane, plane_size(img), hist);
        long total = 0, present = 0;
        int last = -1;
        for (int i = 0; i < 256; i++) {
            if (!hist[i]) continue;
            present++;
            total += hist[i];
            last = i;
        }
        if (present <= 1) continue;
        long step = (total - hist[last]) / 256;
        if (step == 0) continue;
        uint8_t lut[256];
        long below = step / 2;
        for (int i = 0; i < 256; i++) {
            lut[i] = clamp_u8(below / step);
            below += hist[i];
        }
        apply_lut(plane, plane_size(img), lut);
    }
}

// Invert: 255 - p.
void aug_invert(AugImage img) {
    size_t n = image_size(img);
    for (size_t i = 0; i < n; i++) img.px[i] = (uint8_t)(255 - img.px[i]);
}

// Posterize: keep the top `bits` bits of each value.
void aug_posterize(AugImage img, int bits) {
    if (bits < 1) bits = 1;
    if (bits > 8) bits = 8;
    uint8_t mask = (uint8_t)(0xFF << (8 - bits));
    size_t n = image_size(img);
    for (size_t i = 0; i < n; i++) img.px[i] &= mask;
}

// Solarize: values below the threshold are kept, the others inverted.
void aug_solarize(AugImage img, double threshold) {
    size_t n = image_size(img);
    for (size_t i = 0; i < n; i++)
        if (img.px[i] >= threshold) img.px[i] = (uint8_t)(255 - img.px[i]);
}

// SolarizeAdd: add `addition` (clipped to 255, truncated as numpy's astype
// does), then Solarize at `threshold`.
void aug_solarize_add(AugImage img, double addition, double threshold) {
    size_t n = image_size(img);
    for (size_t i = 0; i < n; i++) {
        double v = img.px[i] + addition;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        img.px[i] = (uint8_t)v;
    }
    aug_solarize(img, threshold);
}

// Color: blend each pixel with its gray (luma) value; factor 0 is grayscale,
// 1 the image. A 1-channel image is its own gray, so this is the identity.
void aug_color(AugImage img, double factor) {
    if (img.c != 3) return;
    float alpha = (float)factor;
    size_t n = plane_size(img);
    uint8_t *r = img.px, *g = r + n, *b = g + n;
    for (size_t i = 0; i < n; i++) {
        int gray = luma(r[i], g[i], b[i]);
        r[i] = blend_pixel(gray, r[i], alpha);
        g[i] = blend_pixel(gray, g[i], alpha);
        b[i] = blend_pixel(gray, b[i], alpha);
    }
}

// Contrast: blend with a flat image of the mean luma (rounded to an integer).
void aug_contrast(AugImage img, double factor) {
    size_t n = plane_size(img);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += img.c == 3 ? luma(img.px[i], img.px[n + i], img.px[2 * n + i]) : img.px[i];
    int mean = (int)(sum / (double)n + 0.5);
    float alpha = (float)factor;
    size_t total = image_size(img);
    for (size_t i = 0; i < total; i++) img.px[i] = blend_pixel(mean, img.px[i], alpha);
}

// Brightness: blend with black, i.e. scale by the factor (clipped).
void aug_brightness(AugImage img, double factor) {
    float alpha = (float)factor;
    size_t total = image_size(img);
    for (size_t i = 0; i < total; i++) img.px[i] = blend_pixel(0, img.px[i], alpha);
}

// PIL's ImageFilter.SMOOTH: 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13, rounded;
// the border rows and columns are copied unchanged.
static void smooth_plane(uint8_t *dst, const uint8_t *src, int h, int w) {
    const float side = (float)(1.0 / 13.0), centre = (float)(5.0 / 13.0);
    memcpy(dst, src, (size_t)h * w);
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *above = src + (size_t)(y - 1) * w, *row = src + (size_t)y * w, *below = src + (size_t)(y + 1) * w;
        uint8_t *out = dst + (size_t)y * w;
        for (int x = 1; x < w - 1; x++) {
            float sum = 0.5f;  // rounds the truncation below
            sum += below[x - 1] * side + below[x] * side + below[x + 1] * side;
            sum += row[x - 1] * side + row[x] * centre + row[x + 1] * side;
            sum += above[x - 1] * side + above[x] * side + above[x + 1] * side;
            out[x] = sum <= 0.0f ? 0 : sum >= 255.0f ? 255 : (uint8_t)sum;
        }
    }
}

// Sharpness: blend with the smoothed image; factor > 1 sharpens.
void aug_sharpness(AugImage img, double factor, uint8_t *scratch) {
    for (int c = 0; c < img.c; c++)
        smooth_plane(scratch + c * plane_size(img), img.px + c * plane_size(img), img.h, img.w);
    float alpha = (float)factor;
    size_t total = image_size(img);
    for (size_t i = 0; i < total; i++) img.px[i] = blend_pixel(scratch[i], img.px[i], alpha);
}

// ---------------------------------------------------------------------------
// geometric ops

// PIL's COORD: negative coordinates are outside, others truncate.
static inline int pil_coord(double v) { return v < 0.0 ? -1 : (int)v; }
static inline int pil_fix16(double v) {
    double s = v * 65536.0 + 0.5;
    return s < 0.0 ? (int)floor(s) : (int)s;
}
static inline int fits_fixed(const double m[6], int x, int y) {
    return fabs(x * m[0] + y * m[1] + m[2]) < 32768.0 && fabs(x * m[3] + y * m[4] + m[5]) < 32768.0;
}

// Copies pixel (sx, sy) of every channel of src to (x, y) of img, or 0 there
// when (sx, sy) is outside.
static inline void put_pixel(AugImage img, const uint8_t *src, int x, int y, int sx, int sy) {
    size_t plane = plane_size(img), at = (size_t)y * img.w + x;
    int inside = sx >= 0 && sx < img.w && sy >= 0 && sy < img.h;
    size_t from = inside ? (size_t)sy * img.w + sx : 0;
    for (int c = 0; c < img.c; c++) img.px[c * plane + at] = inside ? src[c * plane + from] : 0;
}

// PIL's nearest-neighbour affine transform has three code paths; each is
// reproduced with its own arithmetic so that ties land on the same pixel.
void aug_affine(AugImage img, const double m[6], uint8_t *scratch) {
    memcpy(scratch, img.px, image_size(img));
    int w = img.w, h = img.h;
    if (m[1] == 0 && m[3] == 0) {
        // scaling and translation: coordinates accumulated in double
        double yo = m[5] + m[4] * 0.5;
        for (int y = 0; y < h; y++, yo += m[4]) {
            double xo = m[2] + m[0] * 0.5;
            for (int x = 0; x < w; x++, xo += m[0]) put_pixel(img, scratch, x, y, pil_coord(xo), pil_coord(yo));
        }
    } else if (fits_fixed(m, 0, 0) && fits_fixed(m, w, h) && fits_fixed(m, 0, h) && fits_fixed(m, w, 0)) {
        // rotation and shear: 16.16 fixed point
        int a0 = pil_fix16(m[0]), a1 = pil_fix16(m[1]), a3 = pil_fix16(m[3]), a4 = pil_fix16(m[4]);
        int row_x = pil_fix16(m[2] + m[0] * 0.5 + m[1] * 0.5), row_y = pil_fix16(m[5] + m[3] * 0.5 + m[4] * 0.5);
        for (int y = 0; y < h; y++, row_x += a1, row_y += a4) {
            int xx = row_x, yy = row_y;
            for (int x = 0; x < w; x++, xx += a0, yy += a3)
                put_pixel(img, scratch, x, y, xx < 0 ? -1 : xx >> 16, yy < 0 ? -1 : yy >> 16);
        }
    } else {
        // coordinates too large for fixed point: double accumulation
        double xo = m[2] + m[1] * 0.5 + m[0] * 0.5, yo = m[5] + m[4] * 0.5 + m[3] * 0.5;
        for (int y = 0; y < h; y++, xo += m[1], yo += m[4]) {
            double xx = xo, yy = yo;
            for (int x = 0; x < w; x++, xx += m[0], yy += m[3]) put_pixel(img, scratch, x, y, pil_coord(xx), pil_coord(yy));
        }
    }
}

// Python's round(v, 15), which Image.rotate applies to cos and sin so that
// multiples of 90 degrees give exact matrices.
static double round15(double v) { return round(v * 1e15) / 1e15; }

// Rotate counter-clockwise about the centre (W/2, H/2), same size, fill 0:
// Image.rotate(degrees) builds the inverse matrix below.
void aug_rotate(AugImage img, double degrees, uint8_t *scratch) {
    double angle = fmod(degrees, 360.0);  // Python's %: result in [0, 360)
    if (angle < 0) angle += 360.0;
    if (angle == 0.0) return;
    double theta = -(angle * (M_PI / 180.0));
    double cx = img.w / 2.0, cy = img.h / 2.0;
    double m[6] = {round15(cos(theta)), round15(sin(theta)), 0.0, round15(-sin(theta)), round15(cos(theta)), 0.0};
    m[2] = m[0] * -cx + m[1] * -cy + 0.0 + cx;
    m[5] = m[3] * -cx + m[4] * -cy + 0.0 + cy;
    aug_affine(img, m, scratch);
}

void aug_shear_x(AugImage img, double factor, uint8_t *scratch) {
    const double m[6] = {1, factor, 0, 0, 1, 0};
    aug_affine(img, m, scratch);
}

void aug_shear_y(AugImage img, double factor, uint8_t *scratch) {
    const double m[6] = {1, 0, 0, factor, 1, 0};
    aug_affine(img, m, scratch);
}

void aug_translate_x(AugImage img, double pixels, uint8_t *scratch) {
    const double m[6] = {1, 0, pixels, 0, 1, 0};
    aug_affine(img, m, scratch);
}

void aug_translate_y(AugImage img, double pixels, uint8_t *scratch) {
    const double m[6] = {1, 0, 0, 0, 1, pixels};
    aug_affine(img, m, scratch);
}

// The reference's cutout colour; a gray image gets its luma.
static const int CUTOUT_RGB[3] = {125, 123, 114};

void aug_fill_box(AugImage img, int x0, int y0, int x1, int y1) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img.w - 1) x1 = img.w - 1;
    if (y1 > img.h - 1) y1 = img.h - 1;
    for (int c = 0; c < img.c; c++) {
        int colour = img.c == 3 ? CUTOUT_RGB[c] : luma(CUTOUT_RGB[0], CUTOUT_RGB[1], CUTOUT_RGB[2]);
        uint8_t *plane = img.px + c * plane_size(img);
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++) plane[(size_t)y * img.w + x] = (uint8_t)colour;
    }
}

// CutoutAbs(v) as randomaug.py draws it. Its np.random.uniform(w) means
// uniform(low=w, high=1.0), so the centre lies in (1, w], not [0, w).
static void cutout_abs(AugImage img, double v, Rng *rng) {
    if (v < 0) return;
    double cx = img.w + (1.0 - img.w) * rng_uniform(rng);
    double cy = img.h + (1.0 - img.h) * rng_uniform(rng);
    int x0 = (int)fmax(0.0, cx - v / 2.0), y0 = (int)fmax(0.0, cy - v / 2.0);
    double x1 = fmin(img.w, x0 + v), y1 = fmin(img.h, y0 + v);
    aug_fill_box(img, x0, y0, (int)x1, (int)y1);
}

void aug_crop_padded(AugImage img, int padding, int top, int left, uint8_t *scratch) {
    memcpy(scratch, img.px, image_size(img));
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++) put_pixel(img, scratch, x, y, x + left - padding, y + top - padding);
}

void aug_hflip(AugImage img) {
    for (int c = 0; c < img.c; c++)
        for (int y = 0; y < img.h; y++) {
            uint8_t *row = img.px + c * plane_size(img) + (size_t)y * img.w;
            for (int l = 0, r = img.w - 1; l < r; l++, r--) {
                uint8_t t = row[l];
                row[l] = row[r];
                row[r] = t;
            }
        }
}

// ---------------------------------------------------------------------------
// RandAugment

static const struct {
    const char *name;
    double min, max;
} OPS[AUG_NUM_OPS] = {
    [AUG_AUTOCONTRAST] = {"AutoContrast", 0, 1},
    [AUG_EQUALIZE] = {"Equalize", 0, 1},
    [AUG_INVERT] = {"Invert", 0, 1},
    [AUG_ROTATE] = {"Rotate", 0, 30},
    [AUG_POSTERIZE] = {"Posterize", 0, 4},
    [AUG_SOLARIZE] = {"Solarize", 0, 256},
    [AUG_SOLARIZE_ADD] = {"SolarizeAdd", 0, 110},
    [AUG_COLOR] = {"Color", 0.1, 1.9},
    [AUG_CONTRAST] = {"Contrast", 0.1, 1.9},
    [AUG_BRIGHTNESS] = {"Brightness", 0.1, 1.9},
    [AUG_SHARPNESS] = {"Sharpness", 0.1, 1.9},
    [AUG_SHEAR_X] = {"ShearX", 0, 0.3},
    [AUG_SHEAR_Y] = {"ShearY", 0, 0.3},
    [AUG_CUTOUT_ABS] = {"CutoutAbs", 0, 40},
    [AUG_TRANSLATE_X_ABS] = {"TranslateXabs", 0, 100},
    [AUG_TRANSLATE_Y_ABS] = {"TranslateYabs", 0, 100},
};

const char *aug_op_name(AugOp op) { return op >= 0 && op < AUG_NUM_OPS ? OPS[op].name : "?"; }

// (M / 30) * (max - min) + min, in the same double operations as the Python.
double aug_op_value(AugOp op, int magnitude) {
    double range = OPS[op].max - OPS[op].min;
    return ((double)magnitude / 30) * range + OPS[op].min;
}

// randomaug.py flips the sign when random.random() > 0.5.
static double random_sign(double v, Rng *rng) { return rng_uniform(rng) > 0.5 ? -v : v; }

void aug_apply_op(AugOp op, double value, AugImage img, uint8_t *scratch, Rng *rng) {
    switch (op) {
    case AUG_AUTOCONTRAST: aug_autocontrast(img); break;
    case AUG_EQUALIZE: aug_equalize(img); break;
    case AUG_INVERT: aug_invert(img); break;
    case AUG_ROTATE: aug_rotate(img, random_sign(value, rng), scratch); break;
    case AUG_POSTERIZE: aug_posterize(img, (int)value < 1 ? 1 : (int)value); break;
    case AUG_SOLARIZE: aug_solarize(img, value); break;
    case AUG_SOLARIZE_ADD: aug_solarize_add(img, value, 128); break;
    case AUG_COLOR: aug_color(img, value); break;
    case AUG_CONTRAST: aug_contrast(img, value); break;
    case AUG_BRIGHTNESS: aug_brightness(img, value); break;
    case AUG_SHARPNESS: aug_sharpness(img, value, scratch); break;
    case AUG_SHEAR_X: aug_shear_x(img, random_sign(value, rng), scratch); break;
    case AUG_SHEAR_Y: aug_shear_y(img, random_sign(value, rng), scratch); break;
    case AUG_CUTOUT_ABS: cutout_abs(img, value, rng); break;
    case AUG_TRANSLATE_X_ABS: aug_translate_x(img, random_sign(value, rng), scratch); break;
    case AUG_TRANSLATE_Y_ABS: aug_translate_y(img, random_sign(value, rng), scratch); break;
    default: break;
    }
}

// ---------------------------------------------------------------------------
// the pipeline

void augment_config_default(AugmentConfig *cfg, const char *dataset) {
    memset(cfg, 0, sizeof *cfg);
    if (!strncmp(dataset, "cifar", 5)) {
        cfg->randaug_n = 2;
        cfg->randaug_m = 14;
        cfg->crop_padding = 4;
        cfg->hflip = 1;
    }
    if (!images_normalization(dataset, cfg->mean, cfg->std)) {
        for (int c = 0; c < 3; c++) cfg->mean[c] = cfg->std[c] = 0.5f;
    }
}

uint64_t augment_stream(uint64_t seed, int epoch, long index) {
    return hash64(hash64(seed, (uint64_t)(uint32_t)epoch), (uint64_t)index);
}

void augment_image_u8(AugImage img, const AugmentConfig *cfg, Rng *rng, uint8_t *scratch) {
    for (int i = 0; i < cfg->randaug_n; i++) {
        AugOp op = (AugOp)rng_below(rng, AUG_NUM_OPS);
        aug_apply_op(op, aug_op_value(op, cfg->randaug_m), img, scratch, rng);
    }
    if (cfg->crop_padding > 0) {  // torchvision draws the top offset, then the left one
        int top = (int)rng_below(rng, (uint64_t)(2 * cfg->crop_padding + 1));
        int left = (int)rng_below(rng, (uint64_t)(2 * cfg->crop_padding + 1));
        aug_crop_padded(img, cfg->crop_padding, top, left, scratch);
    }
    if (cfg->hflip && rng_uniform(rng) < 0.5) aug_hflip(img);
}

// One table per channel: 256 floats computed exactly as ToTensor + Normalize.
static void normalize_tables(const AugmentConfig *cfg, int channels, float table[3][256]) {
    for (int c = 0; c < channels; c++)
        for (int p = 0; p < 256; p++) table[c][p] = ((float)p / 255.0f - cfg->mean[c]) / cfg->std[c];
}

static void normalize_with(const uint8_t *px, int c, size_t plane, const float table[3][256], float *out) {
    for (int ch = 0; ch < c; ch++)
        for (size_t i = 0; i < plane; i++) out[ch * plane + i] = table[ch][px[ch * plane + i]];
}

void augment_normalize(const uint8_t *px, int c, int h, int w, const AugmentConfig *cfg, float *out) {
    float table[3][256];
    normalize_tables(cfg, c, table);
    normalize_with(px, c, (size_t)h * w, table, out);
}

void augment_batch(const ImageSet *set, const int *indices, int n, int train, const AugmentConfig *cfg,
                   uint64_t seed, int epoch, float *out) {
    int C = set->channels, H = set->height, W = set->width;
    if (C != 1 && C != 3) die("augment: images with %d channels are not supported (1 or 3)", C);
    if (train && (cfg->randaug_m < 0 || cfg->randaug_m > AUG_MAX_MAGNITUDE))
        die("augment: RandAugment magnitude %d is outside 0..%d", cfg->randaug_m, AUG_MAX_MAGNITUDE);
    if (train && (cfg->randaug_n < 0 || cfg->crop_padding < 0))
        die("augment: negative RandAugment N (%d) or crop padding (%d)", cfg->randaug_n, cfg->crop_padding);
    size_t pixels = (size_t)C * H * W;
    float table[3][256];
    normalize_tables(cfg, C, table);
#pragma omp parallel
    {
        uint8_t *work = xmalloc(2 * pixels);  // the image being augmented, then scratch
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            long index = indices ? indices[i] : i;
            const uint8_t *src = image_pixels(set, index);
            float *dst = out + (size_t)i * pixels;
            if (!train) {
                normalize_with(src, C, (size_t)H * W, table, dst);
                continue;
            }
            memcpy(work, src, pixels);
            Rng rng;
            rng_seed(&rng, augment_stream(seed, epoch, index));
            augment_image_u8((AugImage){work, C, H, W}, cfg, &rng, work + pixels);
            normalize_with(work, C, (size_t)H * W, table, dst);
        }
        free(work);
    }
}

double augment_benchmark(const ImageSet *set, const AugmentConfig *cfg, int batch, int rounds) {
    int *indices = xmalloc((size_t)batch * sizeof *indices);
    float *out = xmalloc((size_t)batch * image_bytes(set) * sizeof *out);
    for (int i = 0; i < batch; i++) indices[i] = i % set->count;
    augment_batch(set, indices, batch, 1, cfg, 1, -1, out);  // warm-up: pages, threads
    double start = now_seconds();
    for (int r = 0; r < rounds; r++) augment_batch(set, indices, batch, 1, cfg, 1, r, out);
    double seconds = now_seconds() - start;
    free(indices);
    free(out);
    return seconds > 0 ? (double)batch * rounds / seconds : 0.0;
}
