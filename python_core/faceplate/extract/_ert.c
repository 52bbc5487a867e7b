/* Faceplate's evaluator for ensemble-of-regression-trees shape predictors (Kazemi & Sullivan's
 * method, as trained and serialised by dlib's shape_predictor_trainer).
 *
 * Why our own: dlib keeps every leaf of its 68-point model in its own heap block (120,000 of
 * them, 65 MB in all), so a run on a face whose leaves are not in cache waits on one memory
 * round trip per tree (7,500 per run: ~1.7 ms measured on our 2-core machine, against 0.4 ms
 * when the same face is run twice). Here the model is a few flat arrays, each cascade first
 * walks its trees and then sums the chosen leaves with prefetching, so the memory system
 * works on many leaves at once; the leaves are stored as 16-bit integers with one scale per
 * cascade (steps of < 2e-6 of the box: well under a thousandth of a pixel), which halves the
 * bytes a run reads.
 *
 * Three functions, no state (the model lives in Python, as bytes / NumPy arrays):
 *   parse(data: bytes) -> (dims, initial, idx1, idx2, thresh, leaves, anchor, deltas)
 *       the serialised predictor (dlib's own file format) as flat little-endian arrays;
 *   predict(image, rect, initial, idx1, idx2, thresh, leaves, scales, anchor, deltas, dims
 *           [, origin]) -> bytes: the landmarks (2·P float64: x0, y0, x1, y1, ...) in
 *       pixel-index coordinates (pixel (i, j)'s centre at x = i, y = j), unrounded. With
 *       origin (ox, oy) (integers) the image is a window whose pixel (0, 0) is pixel (ox, oy)
 *       of the coordinates rect and the landmarks use, every pixel outside it reading 0: the
 *       same arithmetic and result as the zero-padded image, without building it. The leaves are either float32
 *       (scales None: dlib's own arithmetic, the same result to the bit) or int16, cascade c's
 *       in units of scales[c] (half the bytes to fetch; summed exactly in int32);
 *   quantize(leaves, cascades) -> (int16 leaves, scales): that form from float32 leaves.
 *
 * The file format, as dlib writes it (facts, read from its documentation and files):
 *   integers: a control byte (bits 0-6: the number of magnitude bytes that follow, bit 7: the
 *     sign), then the magnitude's bytes, least significant first;
 *   floats: a mantissa and an exponent, two integers as above (value = mantissa · 2^exponent;
 *     exponents 32000/32001/32002 stand for +inf/-inf/nan);
 *   std::vector: its size (integer) then its items;
 *   a column matrix: -rows and -columns (integers), then the values row by row;
 *   shape_predictor: version (1), the initial shape (2P×1 matrix), the forests (a vector of
 *     cascades, each a vector of trees; a tree is a vector of splits (idx1, idx2 integers,
 *     thresh float) and a vector of leaves (2P×1 matrices)), the anchor indices (a vector per
 *     cascade of integers) and the pixel deltas (a vector per cascade of (x, y) floats).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------- */
/* Parsing */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    const char *error; /* first error, static text */
} Reader;

static int64_t read_int(Reader *r) {
    if (r->error) return 0;
    if (r->p >= r->end) {
        r->error = "truncated file";
        return 0;
    }
    unsigned char ctl = *r->p++;
    int size = ctl & 0x7F;
    if (size > 8 || r->end - r->p < size) {
        r->error = size > 8 ? "bad integer" : "truncated file";
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < size; ++i) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += size;
    return (ctl & 0x80) ? -(int64_t)v : (int64_t)v;
}

static float read_float(Reader *r) {
    int64_t mantissa = read_int(r);
    int64_t exponent = read_int(r);
    if (r->error) return 0.0f;
    if (exponent == 32000) return INFINITY;
    if (exponent == 32001) return -INFINITY;
    if (exponent == 32002) return NAN;
    return (float)ldexp((double)mantissa, (int)exponent);
}

/* A column matrix's length (rows · columns), checked against `expect` when > 0. */
static int64_t read_matrix_len(Reader *r, int64_t expect) {
    int64_t nr = read_int(r), nc = read_int(r);
    nr = nr < 0 ? -nr : nr;
    nc = nc < 0 ? -nc : nc;
    int64_t n = nr * nc;
    if (!r->error && (nc != 1 || n <= 0 || (expect > 0 && n != expect)))
        r->error = "unexpected matrix shape";
    return n;
}

static int64_t read_size(Reader *r, int64_t expect, const char *what) {
    int64_t n = read_int(r);
    if (!r->error && (n < 0 || (expect >= 0 && n != expect))) r->error = what;
    return n;
}

/* A count every cascade (or tree) repeats: the first read fixes *size, which must lie in
 * 1..max (else `bad`); later reads must equal it (else `differs`). Returns 1 when this read
 * fixed it (the caller then allocates), 0 otherwise or on error. */
static int read_same_size(Reader *r, int64_t *size, int64_t max, const char *differs,
                          const char *bad) {
    int64_t n = read_size(r, *size, differs);
    if (r->error || *size >= 0) return 0;
    if (n <= 0 || n > max) {
        r->error = bad;
        return 0;
    }
    *size = n;
    return 1;
}

static PyObject *ert_parse(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    Reader r = {(const unsigned char *)data.buf, (const unsigned char *)data.buf + data.len, NULL};
    PyObject *result = NULL;
    float *initial = NULL, *thresh = NULL, *leaves = NULL, *deltas = NULL;
    uint16_t *idx1 = NULL, *idx2 = NULL;
    uint32_t *anchor = NULL;

    int64_t version = read_int(&r);
    if (!r.error && version != 1) r.error = "unsupported shape predictor version";
    int64_t dim = read_matrix_len(&r, 0); /* 2·P */
    if (!r.error && (dim % 2 != 0 || dim > 4096)) r.error = "unexpected initial shape";
    if (!r.error) initial = malloc(sizeof(float) * (size_t)dim);
    for (int64_t i = 0; !r.error && i < dim; ++i) initial[i] = read_float(&r);

    int64_t cascades = read_size(&r, -1, "bad cascade count");
    int64_t trees = -1, splits = -1, features = -1;
    if (!r.error && (cascades <= 0 || cascades > 64)) r.error = "bad cascade count";
    for (int64_t c = 0; !r.error && c < cascades; ++c) {
        read_same_size(&r, &trees, 100000, "cascades with different tree counts",
                       "bad tree count");
        for (int64_t t = 0; !r.error && t < trees; ++t) {
            if (read_same_size(&r, &splits, 1023, "trees with different depths",
                               "trees are not complete binary trees")) {
                /* a complete binary tree: 2^depth − 1 splits */
                if (((splits + 1) & splits) != 0) {
                    r.error = "trees are not complete binary trees";
                    break;
                }
                size_t nodes = (size_t)(cascades * trees * splits);
                idx1 = malloc(sizeof(uint16_t) * nodes);
                idx2 = malloc(sizeof(uint16_t) * nodes);
                thresh = malloc(sizeof(float) * nodes);
                leaves = malloc(sizeof(float) * (size_t)(cascades * trees * (splits + 1) * dim));
                if (!idx1 || !idx2 || !thresh || !leaves) {
                    r.error = "out of memory";
                    break;
                }
            }
            if (r.error) break;
            size_t base = (size_t)((c * trees + t) * splits);
            for (int64_t s = 0; !r.error && s < splits; ++s) {
                int64_t a = read_int(&r), b = read_int(&r);
                float th = read_float(&r);
                if (a < 0 || b < 0 || a > 65535 || b > 65535) r.error = "bad split index";
                idx1[base + s] = (uint16_t)a;
                idx2[base + s] = (uint16_t)b;
                thresh[base + s] = th;
            }
            read_size(&r, splits + 1, "a tree's leaf count is not its splits + 1");
            float *leaf = leaves + (size_t)((c * trees + t) * (splits + 1) * dim);
            for (int64_t l = 0; !r.error && l <= splits; ++l) {
                read_matrix_len(&r, dim);
                for (int64_t i = 0; !r.error && i < dim; ++i) leaf[l * dim + i] = read_float(&r);
            }
        }
    }
    read_size(&r, cascades, "anchor list count differs from the cascade count");
    for (int64_t c = 0; !r.error && c < cascades; ++c) {
        if (read_same_size(&r, &features, 65536, "cascades with different feature counts",
                           "bad feature count")) {
            anchor = malloc(sizeof(uint32_t) * (size_t)(cascades * features));
            deltas = malloc(sizeof(float) * 2 * (size_t)(cascades * features));
            if (!anchor || !deltas) {
                r.error = "out of memory";
                break;
            }
        }
        for (int64_t f = 0; !r.error && f < features; ++f) {
            int64_t a = read_int(&r);
            if (a < 0 || 2 * a >= dim) r.error = "anchor index out of range";
            anchor[c * features + f] = (uint32_t)a;
        }
    }
    read_size(&r, cascades, "delta list count differs from the cascade count");
    for (int64_t c = 0; !r.error && c < cascades; ++c) {
        read_size(&r, features, "delta count differs from the feature count");
        for (int64_t f = 0; !r.error && f < features; ++f) {
            deltas[2 * (c * features + f)] = read_float(&r);
            deltas[2 * (c * features + f) + 1] = read_float(&r);
        }
    }
    /* Split indices address the feature pixels. */
    for (size_t i = 0; !r.error && i < (size_t)(cascades * trees * splits); ++i)
        if (idx1[i] >= features || idx2[i] >= features) r.error = "split index out of range";
    if (!r.error && r.p != r.end) r.error = "trailing bytes after the predictor";

    if (r.error) {
        PyErr_Format(PyExc_ValueError, "not a dlib shape predictor: %s (at byte %zd)", r.error,
                     (Py_ssize_t)(r.p - (const unsigned char *)data.buf));
    } else {
        size_t nodes = (size_t)(cascades * trees * splits);
        result = Py_BuildValue(
            "(LLLLL)y#y#y#y#y#y#y#", (long long)cascades, (long long)trees, (long long)splits,
            (long long)features, (long long)(dim / 2), (const char *)initial,
            (Py_ssize_t)(sizeof(float) * dim), (const char *)idx1,
            (Py_ssize_t)(sizeof(uint16_t) * nodes), (const char *)idx2,
            (Py_ssize_t)(sizeof(uint16_t) * nodes), (const char *)thresh,
            (Py_ssize_t)(sizeof(float) * nodes), (const char *)leaves,
            (Py_ssize_t)(sizeof(float) * (size_t)(cascades * trees * (splits + 1) * dim)),
            (const char *)anchor, (Py_ssize_t)(sizeof(uint32_t) * (size_t)(cascades * features)),
            (const char *)deltas, (Py_ssize_t)(sizeof(float) * 2 * (size_t)(cascades * features)));
    }
    free(initial);
    free(idx1);
    free(idx2);
    free(thresh);
    free(leaves);
    free(anchor);
    free(deltas);
    PyBuffer_Release(&data);
    return result;
}

/* ----------------------------------------------------------------------------------------- */
/* Prediction */

/* The linear part (a 2×2, row-major) of the least-squares similarity taking `from` onto `to`
 * (P points each, x/y interleaved): scale · rotation, no reflection (Umeyama's solution; in 2-D
 * the best proper rotation has a closed form). */
static void similarity(const float *from, const float *to, int64_t points, float m[4]) {
    double mfx = 0, mfy = 0, mtx = 0, mty = 0;
    for (int64_t i = 0; i < points; ++i) {
        mfx += from[2 * i];
        mfy += from[2 * i + 1];
        mtx += to[2 * i];
        mty += to[2 * i + 1];
    }
    mfx /= (double)points;
    mfy /= (double)points;
    mtx /= (double)points;
    mty /= (double)points;
    double sigma = 0, a = 0, b = 0, c = 0, d = 0; /* covariance [[a, b], [c, d]] = Σ to·fromᵀ */
    for (int64_t i = 0; i < points; ++i) {
        double fx = from[2 * i] - mfx, fy = from[2 * i + 1] - mfy;
        double tx = to[2 * i] - mtx, ty = to[2 * i + 1] - mty;
        sigma += fx * fx + fy * fy;
        a += tx * fx;
        b += tx * fy;
        c += ty * fx;
        d += ty * fy;
    }
    if (sigma <= 0) {
        m[0] = 1.0f, m[1] = 0.0f, m[2] = 0.0f, m[3] = 1.0f;
        return;
    }
    /* R(θ) maximising trace(Rᵀ·cov): θ = atan2(c − b, a + d); scale = that trace / σ. */
    double norm = hypot(a + d, c - b);
    if (norm <= 0) {
        m[0] = 0.0f, m[1] = 0.0f, m[2] = 0.0f, m[3] = 0.0f;
        return;
    }
    double cs = (a + d) / norm, sn = (c - b) / norm, k = norm / sigma;
    m[0] = (float)(k * cs);
    m[1] = (float)(-k * sn);
    m[2] = (float)(k * sn);
    m[3] = (float)(k * cs);
}

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, Py_ssize_t count,
                      const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", name,
                     itemsize * count, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#define PREFETCH_AHEAD 12

/* The model's arrays and sizes, as predict() checked them. */
typedef struct {
    const float *initial;
    const uint16_t *idx1, *idx2;
    const float *thresh;
    const int16_t *leaves;
    const float *leaves_f;
    const float *scales;
    const uint32_t *anchor;
    const float *deltas;
    int64_t cascades, trees, splits, features, points;
    int exact;
} Model;

/* Every cascade on one face: the inner loops of predict(), run without the GIL. Compiled twice
 * where the compiler can (a baseline x86-64 version and an AVX2 one, picked at load time by the
 * CPU): the wider integer adds make the leaf sums ~20 % faster, and neither build contracts or
 * reorders float arithmetic (ISO C mode: no FMA contraction), so both give the same bits. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
static void run_cascades(const Model *mdl, const unsigned char *pix, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t sy, Py_ssize_t sx, Py_ssize_t sc, int rgb, double left,
                         double top, double ax, double ay, double ox, double oy,
                         float *shape, float *values,
                         int32_t *acc, size_t *leaf_index) {
    const float *initial = mdl->initial, *thresh = mdl->thresh, *scales = mdl->scales,
                *deltas = mdl->deltas, *leaves_f = mdl->leaves_f;
    const int16_t *leaves = mdl->leaves;
    const uint16_t *idx1 = mdl->idx1, *idx2 = mdl->idx2;
    const uint32_t *anchor = mdl->anchor;
    const int64_t cascades = mdl->cascades, trees = mdl->trees, splits = mdl->splits,
                  features = mdl->features, points = mdl->points;
    const int64_t dim = 2 * points, leaves_per_tree = splits + 1;
    const int exact = mdl->exact;
    for (int64_t c = 0; c < cascades; ++c) {
        float m[4];
        similarity(initial, shape, points, m);
        const uint32_t *anc = anchor + c * features;
        const float *del = deltas + 2 * c * features;
        for (int64_t f = 0; f < features; ++f) {
            const float dx = del[2 * f], dy = del[2 * f + 1];
            const float u = m[0] * dx + m[1] * dy + shape[2 * anc[f]];
            const float v = m[2] * dx + m[3] * dy + shape[2 * anc[f] + 1];
            const double x = floor(left + ax * (double)u + 0.5) - ox;
            const double y = floor(top + ay * (double)v + 0.5) - oy;
            float value = 0.0f;
            if (x >= 0 && y >= 0 && x < (double)W && y < (double)H) {
                const unsigned char *q = pix + (Py_ssize_t)y * sy + (Py_ssize_t)x * sx;
                value = rgb ? (float)(((unsigned)q[0] + q[sc] + q[2 * sc]) / 3u) : (float)q[0];
            }
            values[f] = value;
        }
        /* Walk every tree first (the split arrays are read in order), then add the chosen
         * leaves, fetching a few trees ahead. */
        const size_t node0 = (size_t)(c * trees * splits);
        for (int64_t t = 0; t < trees; ++t) {
            const size_t base = node0 + (size_t)(t * splits);
            int64_t i = 0;
            while (i < splits) {
                const float diff = values[idx1[base + i]] - values[idx2[base + i]];
                i = diff > thresh[base + i] ? 2 * i + 1 : 2 * i + 2;
            }
            leaf_index[t] = ((size_t)((c * trees + t) * leaves_per_tree) +
                             (size_t)(i - splits)) * (size_t)dim;
        }
        if (exact) { /* dlib's own order: one float addition per leaf value */
            for (int64_t t = 0; t < trees; ++t) {
                const float *leaf = leaves_f + leaf_index[t];
                for (int64_t k = 0; k < dim; ++k) shape[k] += leaf[k];
            }
            continue;
        }
        memset(acc, 0, sizeof(int32_t) * (size_t)dim);
        for (int64_t t = 0; t < trees; ++t) {
            if (t + PREFETCH_AHEAD < trees) {
                const char *ahead = (const char *)(leaves + leaf_index[t + PREFETCH_AHEAD]);
                for (size_t off = 0; off < sizeof(int16_t) * (size_t)dim; off += 64)
                    __builtin_prefetch(ahead + off, 0, 0);
            }
            const int16_t *leaf = leaves + leaf_index[t];
            for (int64_t k = 0; k < dim; ++k) acc[k] += leaf[k];
        }
        for (int64_t k = 0; k < dim; ++k) shape[k] += scales[c] * (float)acc[k];
    }
}

static PyObject *ert_predict(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *img_obj, *objs[8];
    double left, top, right, bottom;
    long long cascades, trees, splits, features, points, ox = 0, oy = 0;
    if (!PyArg_ParseTuple(args, "O(dddd)OOOOOOOO(LLLLL)|(LL)", &img_obj, &left, &top, &right,
                          &bottom, &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &objs[6], &objs[7], &cascades, &trees, &splits, &features, &points,
                          &ox, &oy))
        return NULL;
    if (ox < -(1LL << 40) || ox > (1LL << 40) || oy < -(1LL << 40) || oy > (1LL << 40)) {
        PyErr_SetString(PyExc_ValueError, "origin: out of range");
        return NULL;
    }
    if (cascades <= 0 || trees <= 0 || splits <= 0 || features <= 0 || points <= 0 ||
        ((splits + 1) & splits) != 0) {
        PyErr_SetString(PyExc_ValueError, "bad model dimensions");
        return NULL;
    }
    const int64_t dim = 2 * points, leaves_per_tree = splits + 1;
    Py_buffer img, b[8];
    int got = 0;
    const Py_ssize_t sizes[8][2] = {
        {sizeof(float), dim},
        {sizeof(uint16_t), cascades * trees * splits},
        {sizeof(uint16_t), cascades * trees * splits},
        {sizeof(float), cascades * trees * splits},
        {sizeof(int16_t), cascades * trees * leaves_per_tree * dim},
        {sizeof(float), cascades},
        {sizeof(uint32_t), cascades * features},
        {sizeof(float), 2 * cascades * features}};
    static const char *names[8] = {"initial", "idx1", "idx2", "thresh", "leaves", "scales",
                                   "anchor", "deltas"};
    if (PyObject_GetBuffer(img_obj, &img, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    PyObject *result = NULL;
    float *shape = NULL, *values = NULL;
    int32_t *acc = NULL;
    size_t *leaf_index = NULL;
    if (img.itemsize != 1 || !(img.format == NULL || strcmp(img.format, "B") == 0) ||
        !(img.ndim == 2 || (img.ndim == 3 && (img.shape[2] == 3 || img.shape[2] == 4))) ||
        img.shape[0] < 1 || img.shape[1] < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "image: expected an H×W uint8 grey or H×W×3/4 uint8 RGB(A) array");
        goto done;
    }
    for (; got < 8; ++got) {
        /* float32 leaves (exact, scales unused) or int16 leaves in units of scales[c] */
        Py_ssize_t itemsize = sizes[got][0];
        if (got == 4 && objs[5] == Py_None) itemsize = sizeof(float);
        if (got == 5 && objs[5] == Py_None) {
            b[got].obj = NULL;
            continue;
        }
        if (get_buffer(objs[got], &b[got], itemsize, sizes[got][1], names[got]) < 0) goto done;
    }
    {
        const int exact = objs[5] == Py_None;
        const float *initial = b[0].buf, *thresh = b[3].buf, *scales = exact ? NULL : b[5].buf,
                    *deltas = b[7].buf;
        const int16_t *leaves = b[4].buf;
        const float *leaves_f = b[4].buf;
        const uint16_t *idx1 = b[1].buf, *idx2 = b[2].buf;
        const uint32_t *anchor = b[6].buf;
        const unsigned char *pix = img.buf;
        const Py_ssize_t H = img.shape[0], W = img.shape[1];
        const Py_ssize_t sy = img.strides[0], sx = img.strides[1];
        const Py_ssize_t sc = img.ndim == 3 ? img.strides[2] : 0;
        const int rgb = img.ndim == 3;
        /* Normalised shape space [0, 1]² → image: the rectangle's corners (dlib's convention:
         * left/top/right/bottom are pixel indices, both inclusive). */
        const double ax = right - left, ay = bottom - top;
        shape = malloc(sizeof(float) * (size_t)dim);
        values = malloc(sizeof(float) * (size_t)features);
        acc = malloc(sizeof(int32_t) * (size_t)dim);
        leaf_index = malloc(sizeof(size_t) * (size_t)trees);
        if (!shape || !values || !acc || !leaf_index) {
            PyErr_NoMemory();
            goto done;
        }
        memcpy(shape, initial, sizeof(float) * (size_t)dim);
        Py_BEGIN_ALLOW_THREADS
        run_cascades(&(const Model){initial, idx1, idx2, thresh, leaves, leaves_f, scales, anchor,
                                    deltas, cascades, trees, splits, features, points, exact},
                     pix, H, W, sy, sx, sc, rgb, left, top, ax, ay, (double)ox, (double)oy,
                     shape, values, acc,
                     leaf_index);
        Py_END_ALLOW_THREADS
        result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(sizeof(double) * (size_t)dim));
        if (result) {
            double *out = (double *)PyBytes_AS_STRING(result);
            for (int64_t p = 0; p < points; ++p) {
                out[2 * p] = left + ax * (double)shape[2 * p];
                out[2 * p + 1] = top + ay * (double)shape[2 * p + 1];
            }
        }
    }
done:
    free(shape);
    free(values);
    free(acc);
    free(leaf_index);
    for (int i = 0; i < got; ++i)
        if (b[i].obj != NULL) PyBuffer_Release(&b[i]);
    PyBuffer_Release(&img);
    return result;
}

/* quantize(leaves: float32 buffer, cascades) -> (int16 leaves bytes, float32 scales bytes):
 * cascade c's values in units of scales[c] = max |value| over the cascade / 32767, rounded to
 * nearest. */
static PyObject *ert_quantize(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer in;
    long long cascades;
    if (!PyArg_ParseTuple(args, "y*L", &in, &cascades)) return NULL;
    const Py_ssize_t n = in.len / (Py_ssize_t)sizeof(float);
    if (cascades <= 0 || in.len % (Py_ssize_t)sizeof(float) != 0 || n % cascades != 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "leaves: not a whole number of float32 per cascade");
        return NULL;
    }
    const float *v = in.buf;
    const Py_ssize_t per = n / cascades;
    PyObject *q = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int16_t));
    PyObject *sc = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(cascades * sizeof(float)));
    if (!q || !sc) {
        Py_XDECREF(q);
        Py_XDECREF(sc);
        PyBuffer_Release(&in);
        return NULL;
    }
    int16_t *out = (int16_t *)PyBytes_AS_STRING(q);
    float *scales = (float *)PyBytes_AS_STRING(sc);
    for (long long c = 0; c < cascades; ++c) {
        const float *x = v + c * per;
        double top = 0.0;
        for (Py_ssize_t i = 0; i < per; ++i) top = fmax(top, fabs((double)x[i]));
        const float scale = top > 0.0 ? (float)(top / 32767.0) : 1.0f;
        scales[c] = scale;
        for (Py_ssize_t i = 0; i < per; ++i) {
            double r = nearbyint((double)x[i] / (double)scale);
            r = r > 32767.0 ? 32767.0 : (r < -32767.0 ? -32767.0 : r);
            out[c * per + i] = (int16_t)r;
        }
    }
    PyBuffer_Release(&in);
    return Py_BuildValue("(NN)", q, sc);
}

static PyMethodDef methods[] = {
    {"quantize", ert_quantize, METH_VARARGS,
     "quantize(leaves, cascades) -> (int16 leaves, float32 scales): per-cascade 16-bit leaves."},
    {"parse", ert_parse, METH_VARARGS,
     "parse(data) -> (dims, initial, idx1, idx2, thresh, leaves, anchor, deltas): a serialised "
     "dlib shape predictor as flat arrays (bytes)."},
    {"predict", ert_predict, METH_VARARGS,
     "predict(image, rect, initial, idx1, idx2, thresh, leaves, scales, anchor, deltas, dims"
     "[, origin]) "
     "-> bytes: "
     "2·P float64 landmark coordinates (pixel indices, unrounded)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ert",
                                    "Regression-tree shape predictor evaluation.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ert(void) { return PyModule_Create(&module); }
