/*
 * The renderer's resampling kernel: table lookup + INTER_AREA downscale + rounding to uint8, in one pass.
 *
 *   area(raw, words, pad_word, y0, x0, side, size, channels, out)
 *
 * raw   : 2-D C-contiguous uint8 or uint16 stored values (buffer protocol), the table's indices
 * words : uint64 table, 4 uint16 lanes per entry (8.8 fixed-point grey, lane 0 low)
 * out   : writable C-contiguous uint8 buffer of size*size*channels bytes
 *
 * The square (y0, x0, side) of raw may extend past the slice; those pixels take pad_word.
 * Output pixel (i, j) is the area-weighted mean of the source square [i*s, (i+1)*s) x
 * [j*s, (j+1)*s), s = side / size, rounded half up, as every ichprep output is.
 *
 * Why C: OpenCV's INTER_AREA for a non-integer factor (every cropped slice) is a scalar loop over
 * a gathered copy of the crop: 0.6 ms of a slice's 1.2 ms. This kernel takes 0.16 ms with SSE2.
 *
 * Arithmetic plan (the reasons):
 *
 * - INTER_AREA for side -> size is separable and its weights are exact
 *   rationals with denominator `size`: source pixel x overlaps output j by
 *   W = |[j*side,(j+1)*side) & [x*size,(x+1)*size)|, an integer <= size, and the
 *   weights of one output sum to `side`.  So out = sum Wy*Wx*v / (256*side^2).
 *
 * - Vertical pass first, in exact integers.  Rows are gathered once into a
 *   small ring of row buffers (each source row feeds at most two output rows
 *   when side >= size).  Interleaving two rows with punpcklwd puts the *same*
 *   column of both rows side by side, which is exactly the pair pmaddwd wants,
 *   so two source rows x two pixels x 4 lanes cost one unpack + one pmaddwd.
 *   pmaddwd is signed, lanes go up to 65280, so the gather XORs each lane with
 *   0x8000 (v - 32768); the missing 32768*sum(W) is a constant (128 grey),
 *   added back at the end.  Exact int32 as long as side < 65536.
 *
 * - Horizontal pass second, in float32, on `size` rows only.  An int32 pass
 *   would need 32x32 multiplies (no pmulld in SSE2) and the sums no longer fit
 *   16 bits for another pmaddwd.  Every output gets the same number of taps T
 *   (zero-padded weights), so there is no per-pixel branch; the 1/(256 side^2)
 *   scale, the +0.5 rounding and the +128 bias are folded into the weights
 *   and one added constant, then a truncating convert and two saturating
 *   packs give floor(x+0.5) clipped to 0..255.  float32 error is ~1e-5 grey;
 *   a tiny epsilon makes exact .5 ties (constant regions) round up as
 *   floor(avg+0.5) says.
 *
 * - All four lanes are carried through (a 64-bit word is one natural SIMD
 *   unit); unused lanes are dropped only when packing the bytes.
 *
 * SSE2 intrinsics when __SSE2__ is defined (always on x86-64); plain C
 * otherwise (or with -DAREA_NO_SIMD), with the same integer/float maths: it is
 * slower than OpenCV, so the renderer uses it only in tests (best_isa() == 0
 * sends it to OpenCV). With GCC >= 6 on x86-64 the passes are also built for
 * AVX2+FMA (target attribute) and chosen at run time by __builtin_cpu_supports;
 * other compilers, or -DAREA_NO_AVX2, get just the baseline.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__) && !defined(AREA_NO_SIMD)
#define AREA_SSE2 1
#include <emmintrin.h>
#else
#define AREA_SSE2 0
#endif

#if AREA_SSE2 && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    (__GNUC__ >= 6) && !defined(AREA_NO_AVX2)
#define AREA_HAVE_AVX2 1
#include <immintrin.h>
#else
#define AREA_HAVE_AVX2 0
#endif

#define LANE_BIAS 0x8000800080008000ULL
/* Tie epsilon, in units of 2^-16 grey (the float spacing at 128..256, so
   128.5 + eps is exact).  It must beat the float32 error bound: products
   <= 2*2^-24*128, each of T-1 adds <= 2^-18 (|partial sum| < 128), final add
   and V conversion <= 2^-17 each, i.e. about 2 + (T-1)/4 units.  Genuine
   values within eps below .5 (a ~1e-4 fraction) round up wrongly. */
static double tie_eps(int T)
{
    /* capped: beyond ~50 taps ties may go either way instead of costing accuracy */
    return (T < 50 ? 3 + (T + 2) / 4 : 16) / 65536.0;
}

/* ------------------------------------------------------------------------ */
/* Tap tables                                                                */

/* Taps of one axis: output j reads source first[j] .. first[j]+T-1 with
   integer weights w[j*T + k] (zero past the real taps).  Returns T. */
static int axis_taps_count(Py_ssize_t side, Py_ssize_t size)
{
    int T = 1;
    for (Py_ssize_t j = 0; j < size; j++) {
        int64_t lo = (int64_t)j * side, hi = lo + side;
        int n = (int)((hi - 1) / size - lo / size + 1);
        if (n > T) T = n;
    }
    return T;
}

static void axis_taps(Py_ssize_t side, Py_ssize_t size, int T,
                      int32_t *first, int32_t *ntap, int32_t *w)
{
    for (Py_ssize_t j = 0; j < size; j++) {
        int64_t lo = (int64_t)j * side, hi = lo + side;
        int64_t x0 = lo / size, x1 = (hi - 1) / size;
        first[j] = (int32_t)x0;
        ntap[j] = (int32_t)(x1 - x0 + 1);
        for (int k = 0; k < T; k++) {
            int64_t x = x0 + k, a, b;
            if (x > x1) { w[j * T + k] = 0; continue; }
            a = x * size > lo ? x * size : lo;
            b = (x + 1) * size < hi ? (x + 1) * size : hi;
            w[j * T + k] = (int32_t)(b - a);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Gather                                                                    */

typedef struct {
    const void *raw;       /* slice data */
    int itemsize;          /* 1 or 2 */
    Py_ssize_t H, W;       /* slice shape */
    const uint64_t *words;
    uint64_t pad;          /* already biased */
    Py_ssize_t y0, x0, side, size;
    int channels;
} Job;

/* One crop row into dst[0..side), lanes biased to signed. */
static void gather_row(const Job *jb, Py_ssize_t y, uint64_t *dst)
{
    Py_ssize_t sy = jb->y0 + y, side = jb->side;
    Py_ssize_t xa, xb, x;
    const uint64_t *wd = jb->words;
    const uint64_t bias = LANE_BIAS;

    if (sy < 0 || sy >= jb->H) {
        for (x = 0; x < side; x++) dst[x] = jb->pad;
        return;
    }
    /* crop columns [xa, xb) fall inside the slice */
    xa = -jb->x0; if (xa < 0) xa = 0; if (xa > side) xa = side;
    xb = jb->W - jb->x0; if (xb > side) xb = side; if (xb < xa) xb = xa;
    for (x = 0; x < xa; x++) dst[x] = jb->pad;
    for (x = xb; x < side; x++) dst[x] = jb->pad;

    if (jb->itemsize == 2) {
        const uint16_t *s = (const uint16_t *)jb->raw + sy * jb->W + jb->x0;
        for (x = xa; x < xb; x++) dst[x] = wd[s[x]] ^ bias;
    } else {
        const uint8_t *s = (const uint8_t *)jb->raw + sy * jb->W + jb->x0;
        for (x = xa; x < xb; x++) dst[x] = wd[s[x]] ^ bias;
    }
}

/* ------------------------------------------------------------------------ */
/* Packing 4 lanes (int32, already rounded) into `channels` bytes            */

static inline void put_px(uint8_t *o, const int32_t *v, int channels)
{
    for (int c = 0; c < channels; c++) {
        int32_t t = v[c];
        o[c] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
    }
}

/* ------------------------------------------------------------------------ */
/* Passes, plain C: the reference for the SIMD versions and the fallback off
   x86.  Same integers, same float weights and summation order (bar FMA).    */

/* Two rows of a tall output row (see vpair_sse2). */
static void vpair_c(const uint64_t *const *rows, const int32_t *w, int m,
                    float *V, Py_ssize_t cols, int first, int last)
{
    int32_t *Vi = (int32_t *)V;
    for (Py_ssize_t x = 0; x < 4 * cols; x++) {
        int32_t acc = first ? 0 : Vi[x];
        for (int k = 0; k < m; k++)
            acc += w[k] * (int32_t)(int16_t)(uint16_t)(rows[k][x / 4] >> (16 * (x % 4)));
        if (last) V[x] = (float)acc; else Vi[x] = acc;
    }
}

/* Output row of n <= 3 source rows; rows[k] are biased words. */
static void vpass_c(const uint64_t *const *rows, const int32_t *w, int n,
                    float *V, Py_ssize_t cols)
{
    for (Py_ssize_t x = 0; x < cols; x++) {
        int32_t acc[4] = {0, 0, 0, 0};
        for (int k = 0; k < n; k++) {
            uint64_t q = rows[k][x];
            for (int l = 0; l < 4; l++)
                acc[l] += w[k] * (int32_t)(int16_t)(uint16_t)(q >> (16 * l));
        }
        for (int l = 0; l < 4; l++) V[4 * x + l] = (float)acc[l];
    }
}

static void hpass_c(const float *V, const int32_t *xs, const float *wv, int T,
                    float bias, uint8_t *o, Py_ssize_t size, int channels)
{
    for (Py_ssize_t j = 0; j < size; j++) {
        const float *p = V + 4 * (Py_ssize_t)xs[j];
        const float *w = wv + 4 * (Py_ssize_t)j * T;
        int32_t r[4];
        for (int l = 0; l < 4; l++) {
            float acc = p[l] * w[0];
            for (int k = 1; k < T; k++) acc += p[4 * k + l] * w[4 * k];
            r[l] = (int32_t)(acc + bias);
        }
        put_px(o + j * channels, r, channels);
    }
}

#if AREA_SSE2

#define WPAIR(a, b) \
    _mm_set1_epi32((int)(((uint32_t)(uint16_t)(b) << 16) | (uint16_t)(a)))

/* n <= 3 rows.  Two columns per step: unpack lo/hi of two row vectors = column x / x+1 of
   both rows, lane by lane, ready for pmaddwd with (w_row_a, w_row_b). */
static inline __attribute__((always_inline)) void
vpass_body(const uint64_t *const *rows, const int32_t *w, int n, float *V, Py_ssize_t cols)
{
    Py_ssize_t q, np = (cols + 1) / 2;
    const __m128i z = _mm_setzero_si128();
    const __m128i *r0 = (const __m128i *)rows[0];
    const __m128i *r1 = (const __m128i *)rows[n > 1 ? 1 : 0];  /* n == 1: weight 0 */
    const __m128i *r2 = (const __m128i *)rows[n > 2 ? 2 : 0];
    const __m128i w01 = WPAIR(w[0], n > 1 ? w[1] : 0);
    const __m128i w2 = WPAIR(n > 2 ? w[2] : 0, 0);
    if (n == 3) {
        for (q = 0; q < np; q++) {
            __m128i a = _mm_load_si128(r0 + q), b = _mm_load_si128(r1 + q);
            __m128i c = _mm_load_si128(r2 + q);
            __m128i lo = _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(a, b), w01),
                                       _mm_madd_epi16(_mm_unpacklo_epi16(c, z), w2));
            __m128i hi = _mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(a, b), w01),
                                       _mm_madd_epi16(_mm_unpackhi_epi16(c, z), w2));
            _mm_store_ps(V + 8 * q, _mm_cvtepi32_ps(lo));
            _mm_store_ps(V + 8 * q + 4, _mm_cvtepi32_ps(hi));
        }
    } else {
        for (q = 0; q < np; q++) {
            __m128i a = _mm_load_si128(r0 + q), b = _mm_load_si128(r1 + q);
            __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi16(a, b), w01);
            __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi16(a, b), w01);
            _mm_store_ps(V + 8 * q, _mm_cvtepi32_ps(lo));
            _mm_store_ps(V + 8 * q + 4, _mm_cvtepi32_ps(hi));
        }
    }
}

/* Output rows spanning more than 3 source rows (side > 2*size): the rows are
   fed two at a time and accumulated in place as int32, so only two row
   buffers exist however large side/size is.  first: store instead of add;
   last: convert the sums to float. */
static void vpair_sse2(const uint64_t *const *rows, const int32_t *w, int m,
                       float *V, Py_ssize_t cols, int first, int last)
{
    Py_ssize_t q, np = (cols + 1) / 2;
    __m128i *Vi = (__m128i *)V;
    const __m128i *ra = (const __m128i *)rows[0];
    const __m128i *rb = (const __m128i *)rows[m > 1 ? 1 : 0];
    __m128i wab = WPAIR(w[0], m > 1 ? w[1] : 0);
    for (q = 0; q < np; q++) {
        __m128i a = _mm_load_si128(ra + q), b = _mm_load_si128(rb + q);
        __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi16(a, b), wab);
        __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi16(a, b), wab);
        if (!first) {
            lo = _mm_add_epi32(lo, _mm_load_si128(Vi + 2 * q));
            hi = _mm_add_epi32(hi, _mm_load_si128(Vi + 2 * q + 1));
        }
        if (last) {
            _mm_store_ps(V + 8 * q, _mm_cvtepi32_ps(lo));
            _mm_store_ps(V + 8 * q + 4, _mm_cvtepi32_ps(hi));
        } else {
            _mm_store_si128(Vi + 2 * q, lo);
            _mm_store_si128(Vi + 2 * q + 1, hi);
        }
    }
}

/* One output pixel: T taps; the bias goes in last so the partial sums stay
   below 128 in magnitude (finer float spacing); truncation = floor (x > 0). */
static inline __attribute__((always_inline)) __m128i
hpx_sse2(const float *V, const int32_t *xs, const float *wv, Py_ssize_t j, int T, __m128 b)
{
    const float *p = V + 4 * (Py_ssize_t)xs[j];
    const float *w = wv + 4 * j * T;
    __m128 acc = _mm_mul_ps(_mm_load_ps(p), _mm_load_ps(w));
    for (int k = 1; k < T; k++)
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_load_ps(p + 4 * k), _mm_load_ps(w + 4 * k)));
    return _mm_cvttps_epi32(_mm_add_ps(acc, b));
}

static inline __attribute__((always_inline)) void
hrow_sse2(const float *V, const int32_t *xs, const float *wv, const int T, float bias,
          uint8_t *o, Py_ssize_t size, int ch)
{
    const __m128 b = _mm_set1_ps(bias);
    Py_ssize_t j = 0;
    for (; j + 4 <= size; j += 4) {
        __m128i c0 = hpx_sse2(V, xs, wv, j, T, b), c1 = hpx_sse2(V, xs, wv, j + 1, T, b);
        __m128i c2 = hpx_sse2(V, xs, wv, j + 2, T, b), c3 = hpx_sse2(V, xs, wv, j + 3, T, b);
        /* saturating packs do the clip to 0..255 */
        __m128i px = _mm_packus_epi16(_mm_packs_epi32(c0, c1), _mm_packs_epi32(c2, c3));
        if (ch == 4) {
            _mm_storeu_si128((__m128i *)(o + 4 * j), px);
        } else if (ch == 3) {
            /* drop every 4th byte with 64-bit shifts (no pshufb in SSE2) */
            uint64_t t[2], a, h, s0;
            uint32_t s1;
            _mm_storeu_si128((__m128i *)t, px);
            a = (t[0] & 0xFFFFFFu) | ((t[0] >> 8) & 0xFFFFFF000000ull);
            h = (t[1] & 0xFFFFFFu) | ((t[1] >> 8) & 0xFFFFFF000000ull);
            s0 = a | (h << 48);
            s1 = (uint32_t)(h >> 16);
            memcpy(o + 3 * j, &s0, 8);
            memcpy(o + 3 * j + 8, &s1, 4);
        } else {
            uint8_t t[16];
            _mm_storeu_si128((__m128i *)t, px);
            for (int m = 0; m < 4; m++) memcpy(o + (j + m) * ch, t + 4 * m, ch);
        }
    }
    for (; j < size; j++) {
        __m128i c = hpx_sse2(V, xs, wv, j, T, b);
        int32_t t[4];
        _mm_storeu_si128((__m128i *)t, c);
        put_px(o + j * ch, t, ch);
    }
}

static inline __attribute__((always_inline)) void
hpass_body(const float *V, const int32_t *xs, const float *wv, int T,
           float bias, uint8_t *o, Py_ssize_t size, int ch)
{
    switch (T) {   /* constant T lets the tap loop unroll */
    case 1: hrow_sse2(V, xs, wv, 1, bias, o, size, ch); break;
    case 2: hrow_sse2(V, xs, wv, 2, bias, o, size, ch); break;
    case 3: hrow_sse2(V, xs, wv, 3, bias, o, size, ch); break;
    case 4: hrow_sse2(V, xs, wv, 4, bias, o, size, ch); break;
    default: hrow_sse2(V, xs, wv, T, bias, o, size, ch); break;
    }
}

static void vpass_sse2(const uint64_t *const *rows, const int32_t *w, int n,
                       float *V, Py_ssize_t cols)
{
    vpass_body(rows, w, n, V, cols);
}

static void hpass_sse2(const float *V, const int32_t *xs, const float *wv, int T,
                       float bias, uint8_t *o, Py_ssize_t size, int ch)
{
    hpass_body(V, xs, wv, T, bias, o, size, ch);
}

#if AREA_HAVE_AVX2
/* Same maths, AVX2: vertical pass four columns per step (the 256-bit unpack
   works per 128-bit half, so a cross-half permute restores column order);
   horizontal pass is the SSE2 body recompiled with VEX + FMA contraction. */
#define AVX2_FN __attribute__((target("avx2,fma")))

static AVX2_FN void vpass_avx2(const uint64_t *const *rows, const int32_t *w, int n,
                               float *V, Py_ssize_t cols)
{
    Py_ssize_t q, nq = (cols + 3) / 4;
    const __m256i z = _mm256_setzero_si256();
    const __m256i *r0, *r1, *r2;
    __m256i w01, w2;
    r0 = (const __m256i *)rows[0];
    r1 = (const __m256i *)rows[n > 1 ? 1 : 0];
    r2 = (const __m256i *)rows[n > 2 ? 2 : 0];
    w01 = _mm256_set1_epi32((int)(((uint32_t)(uint16_t)(n > 1 ? w[1] : 0) << 16) | (uint16_t)w[0]));
    w2 = _mm256_set1_epi32((int)(uint16_t)(n > 2 ? w[2] : 0));
    for (q = 0; q < nq; q++) {
        __m256i a = _mm256_load_si256(r0 + q), b = _mm256_load_si256(r1 + q);
        __m256i lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), w01);  /* cols 0, 2 */
        __m256i hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), w01);  /* cols 1, 3 */
        if (n == 3) {
            __m256i c = _mm256_load_si256(r2 + q);
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(c, z), w2));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(c, z), w2));
        }
        _mm256_store_ps(V + 16 * q, _mm256_cvtepi32_ps(_mm256_permute2x128_si256(lo, hi, 0x20)));
        _mm256_store_ps(V + 16 * q + 8, _mm256_cvtepi32_ps(_mm256_permute2x128_si256(lo, hi, 0x31)));
    }
}

static AVX2_FN void hpass_avx2(const float *V, const int32_t *xs, const float *wv, int T,
                               float bias, uint8_t *o, Py_ssize_t size, int ch)
{
    hpass_body(V, xs, wv, T, bias, o, size, ch);
}
#endif

#endif /* AREA_SSE2 */

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

typedef void (*vpass_fn)(const uint64_t *const *, const int32_t *, int, float *, Py_ssize_t);
typedef void (*vpair_fn)(const uint64_t *const *, const int32_t *, int, float *, Py_ssize_t,
                         int, int);
typedef void (*hpass_fn)(const float *, const int32_t *, const float *, int, float,
                         uint8_t *, Py_ssize_t, int);

static int run_job(const Job *jb, uint8_t *out, int isa)
{
    Py_ssize_t side = jb->side, size = jb->size;
    int ch = jb->channels;
    int Tx = axis_taps_count(side, size), Ty = Tx;
    int K = Ty <= 3 ? Ty : 2;            /* ring slots: rows of one output row */
    /* multiple of 4 words (32-byte aligned rows); vector loads read up to 3 past */
    Py_ssize_t rowlen = (side + 7) & ~(Py_ssize_t)3;
    Py_ssize_t vlen = side + Tx + 4;     /* taps / vector stores run past the last column */
    size_t bytes = 0;
    char *mem, *p;
    uint64_t *ring;
    float *V, *wv;
    int32_t *xfirst, *xn, *xw, *yfirst, *yn, *yw;
    const uint64_t **rp;
    vpass_fn vpass = vpass_c;
    hpass_fn hpass = hpass_c;
    vpair_fn vpair = vpair_c;
    Py_ssize_t next = 0;                 /* next crop row to gather */
    double scale = 1.0 / (256.0 * (double)side * (double)side);
    float bias = (float)(128.0 + 0.5 + tie_eps(Tx));

#if AREA_SSE2
    vpass = vpass_sse2; hpass = hpass_sse2; vpair = vpair_sse2;
#if AREA_HAVE_AVX2
    if (isa == 2) { vpass = vpass_avx2; hpass = hpass_avx2; }
#endif
#endif
    if (isa == 0) { vpass = vpass_c; hpass = hpass_c; vpair = vpair_c; }

#define TAKE(n) (bytes += (((size_t)(n)) + 63) & ~(size_t)63)
    TAKE(sizeof(uint64_t) * K * rowlen);
    TAKE(sizeof(float) * 4 * vlen);
    TAKE(sizeof(float) * 4 * size * Tx);
    TAKE(sizeof(int32_t) * size * (2 + Tx));
    TAKE(sizeof(int32_t) * size * (2 + Ty));
    TAKE(sizeof(uint64_t *) * 3);
#undef TAKE
    mem = (char *)malloc(bytes + 64);
    if (!mem) return -1;
    p = (char *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
#define CARVE(T, n) ((T *)p); p += ((((size_t)(n)) * sizeof(T)) + 63) & ~(size_t)63
    ring = CARVE(uint64_t, K * rowlen);
    V = CARVE(float, 4 * vlen);
    wv = CARVE(float, 4 * size * Tx);
    xfirst = CARVE(int32_t, size * (2 + Tx));
    yfirst = CARVE(int32_t, size * (2 + Ty));
    rp = (const uint64_t **)p;
#undef CARVE
    xn = xfirst + size; xw = xn + size;
    yn = yfirst + size; yw = yn + size;

    memset(ring, 0, sizeof(uint64_t) * K * rowlen);
    memset(V, 0, sizeof(float) * 4 * vlen);
    axis_taps(side, size, Tx, xfirst, xn, xw);
    axis_taps(side, size, Ty, yfirst, yn, yw);
    for (Py_ssize_t j = 0; j < size * Tx; j++) {
        float f = (float)(xw[j] * scale);
        wv[4 * j] = wv[4 * j + 1] = wv[4 * j + 2] = wv[4 * j + 3] = f;
    }

    for (Py_ssize_t i = 0; i < size; i++) {
        int n = yn[i];
        Py_ssize_t y = yfirst[i];
        if (Ty > 3) {
            /* the row shared with the previous output row is simply gathered
               again: one extra row per output row, n >= 3 rows each */
            for (int k = 0; k < n; k += 2) {
                int m = n - k < 2 ? n - k : 2;
                gather_row(jb, y + k, ring);
                if (m > 1) gather_row(jb, y + k + 1, ring + rowlen);
                rp[0] = ring; rp[1] = ring + rowlen;
                vpair(rp, yw + i * Ty + k, m, V, side, k == 0, k + 2 >= n);
            }
            hpass(V, xfirst, wv, Tx, bias, out + i * size * ch, size, ch);
            continue;
        }
        while (next < y + n) {
            gather_row(jb, next, ring + (next % K) * rowlen);
            next++;
        }
        for (int k = 0; k < n; k++) rp[k] = ring + ((y + k) % K) * rowlen;
        vpass(rp, yw + i * Ty, n, V, side);
        hpass(V, xfirst, wv, Tx, bias, out + i * size * ch, size, ch);
    }
    free(mem);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Python glue                                                               */

/* Whether a buffer's struct format is one of the single codes in `accept`, in native byte order
   ('@', '=', or the explicit order that is this machine's; '>' and '!' on a little-endian one are not). */
static int fmt_is(const char *f, const char *accept)
{
    if (!f) return 0;
    if (*f == '@' || *f == '=' || *f == (PY_LITTLE_ENDIAN ? '<' : '>')) f++;
    return f[0] && !f[1] && strchr(accept, f[0]) != NULL;
}

static PyObject *do_area(PyObject *args, int isa)
{
    PyObject *oraw, *owords, *oout;
    unsigned long long pad;
    Py_ssize_t y0, x0, side, size, channels;
    Py_buffer braw, bw, bout;
    Job jb;
    int rc;

    if (!PyArg_ParseTuple(args, "OOKnnnnnO:area", &oraw, &owords, &pad, &y0, &x0,
                          &side, &size, &channels, &oout))
        return NULL;
    if (side < 1 || size < 1 || side < size || side >= 65536 || size > 32767) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= size <= side < 65536 (downscale only)");
        return NULL;
    }
    if (channels < 1 || channels > 4) {
        PyErr_SetString(PyExc_ValueError, "channels must be 1..4");
        return NULL;
    }
    if (PyObject_GetBuffer(oraw, &braw, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(owords, &bw, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&braw);
        return NULL;
    }
    if (PyObject_GetBuffer(oout, &bout, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&braw); PyBuffer_Release(&bw);
        return NULL;
    }
    rc = -1;
    if (braw.ndim != 2 || !((braw.itemsize == 2 && fmt_is(braw.format, "H")) ||
                            (braw.itemsize == 1 && fmt_is(braw.format, "B")))) {
        PyErr_SetString(PyExc_TypeError, "raw must be a 2-D C-contiguous uint8 or uint16 array");
    } else if (bw.itemsize != 8 || !fmt_is(bw.format, "QL")) {
        PyErr_SetString(PyExc_TypeError, "words must be a contiguous uint64 array");
    } else if (bw.len != (Py_ssize_t)8 << (8 * braw.itemsize)) {
        PyErr_SetString(PyExc_ValueError, "words must hold one entry per value of raw's dtype (65536 or 256)");
    } else if (bout.len != size * size * channels) {
        PyErr_SetString(PyExc_ValueError, "out must hold size*size*channels bytes");
    } else {
        jb.raw = braw.buf;
        jb.itemsize = (int)braw.itemsize;
        jb.H = braw.shape[0];
        jb.W = braw.shape[1];
        jb.words = (const uint64_t *)bw.buf;
        jb.pad = (uint64_t)pad ^ LANE_BIAS;
        jb.y0 = y0; jb.x0 = x0; jb.side = side; jb.size = size;
        jb.channels = (int)channels;
        Py_BEGIN_ALLOW_THREADS
        rc = run_job(&jb, (uint8_t *)bout.buf, isa);
        Py_END_ALLOW_THREADS
        if (rc < 0) PyErr_NoMemory();
    }
    PyBuffer_Release(&braw); PyBuffer_Release(&bw); PyBuffer_Release(&bout);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static int detect_isa(void)
{
#if AREA_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
#endif
#if AREA_SSE2
    return 1;
#else
    return 0;
#endif
}

/* The best instruction set of this CPU, detected once when the module is imported. */
static int g_isa;

static PyObject *py_area(PyObject *self, PyObject *args)
{
    (void)self;
    return do_area(args, g_isa);
}

/* area_isa(isa, ...) forces an instruction set (0 = C, 1 = SSE2, 2 = AVX2),
   for tests and benchmarks; falls back to the best available one. */
static PyObject *py_area_isa(PyObject *self, PyObject *args)
{
    int isa;
    PyObject *rest, *r;
    (void)self;
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "area_isa(isa, ...)");
        return NULL;
    }
    isa = (int)PyLong_AsLong(PyTuple_GET_ITEM(args, 0));
    if (isa == -1 && PyErr_Occurred()) return NULL;
    if (isa > g_isa) isa = g_isa;
    rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    if (!rest) return NULL;
    r = do_area(rest, isa);
    Py_DECREF(rest);
    return r;
}

static PyObject *py_isa(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyLong_FromLong(g_isa);
}

static PyMethodDef methods[] = {
    {"area", py_area, METH_VARARGS,
     "area(raw, words, pad_word, y0, x0, side, size, channels, out)\n"
     "Lookup + INTER_AREA downscale of the square crop + round to uint8 into out."},
    {"area_isa", py_area_isa, METH_VARARGS, "area_isa(isa, *args): force 0=C, 1=SSE2, 2=AVX2"},
    {"best_isa", py_isa, METH_NOARGS, "instruction set area() uses: 0=C, 1=SSE2, 2=AVX2"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_area", "The renderer's resampling kernel (see the source's opening comment).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__area(void)
{
    g_isa = detect_isa();
    return PyModule_Create(&moddef);
}
