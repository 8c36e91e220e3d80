#include <stddef.h>
#include <string.h>
#include "norm_row.h"
#include "simd.h"
#include "winograd.h"

// The transforms of F(4x4, 3x3) with the points 0, 1, -1, 2, -2 and
// infinity (Lavin and Gray 2016), each applied to the columns of a tile
// and then to its rows. Each 1-D macro takes its inputs as expressions of
// scalars or of vectors of tiles alike and writes its outputs to o[].

// G3 is G x: three taps of a filter to the six values of a tile.
#define G3(x0, x1, x2, o)                                                            \
	do {                                                                         \
		o[0] = 0.25f * (x0);                                                 \
		o[1] = (-1.0f / 6) * ((x0) + (x1) + (x2));                           \
		o[2] = (-1.0f / 6) * ((x0) - (x1) + (x2));                           \
		o[3] = (1.0f / 24) * (x0) + (1.0f / 12) * (x1) + (1.0f / 6) * (x2);  \
		o[4] = (1.0f / 24) * (x0) - (1.0f / 12) * (x1) + (1.0f / 6) * (x2);  \
		o[5] = (x2);                                                         \
	} while (0)

// GT6 is G^T u, the adjoint of G3: six values of a tile to three taps.
#define GT6(u0, u1, u2, u3, u4, u5, o)                                                       \
	do {                                                                                 \
		o[0] = 0.25f * (u0) - (1.0f / 6) * ((u1) + (u2)) + (1.0f / 24) * ((u3) + (u4)); \
		o[1] = (1.0f / 6) * ((u2) - (u1)) + (1.0f / 12) * ((u3) - (u4));             \
		o[2] = (1.0f / 6) * ((u3) + (u4) - (u1) - (u2)) + (u5);                      \
	} while (0)

// BT6 is B^T d: six input values to the six values of a tile.
#define BT6(d0, d1, d2, d3, d4, d5, o)                             \
	do {                                                       \
		o[0] = 4.0f * (d0) - 5.0f * (d2) + (d4);           \
		o[1] = ((d3) + (d4)) - 4.0f * ((d1) + (d2));       \
		o[2] = ((d4) - (d3)) + 4.0f * ((d1) - (d2));       \
		o[3] = ((d4) - (d2)) + 2.0f * ((d3) - (d1));       \
		o[4] = ((d4) - (d2)) - 2.0f * ((d3) - (d1));       \
		o[5] = 4.0f * (d1) - 5.0f * (d3) + (d5);           \
	} while (0)

// AT6 is A^T m: the six values of a tile to four outputs.
#define AT6(m0, m1, m2, m3, m4, m5, o)                                                      \
	do {                                                                                \
		const __typeof__(m0) p12_ = (m1) + (m2), n12_ = (m1) - (m2);                \
		const __typeof__(m0) p34_ = (m3) + (m4), n34_ = (m3) - (m4);                \
		o[0] = (m0) + p12_ + p34_;                                                  \
		o[1] = n12_ + 2.0f * n34_;                                                  \
		o[2] = p12_ + 4.0f * p34_;                                                  \
		o[3] = n12_ + 8.0f * n34_ + (m5);                                           \
	} while (0)

// A4 is A g, the adjoint of AT6: four output gradients to six values.
#define A4(g0, g1, g2, g3, o)                                                               \
	do {                                                                                \
		const __typeof__(g0) p02_ = (g0) + (g2), p13_ = (g1) + (g3);                \
		const __typeof__(g0) q02_ = (g0) + 4.0f * (g2), q13_ = 2.0f * (g1) + 8.0f * (g3); \
		o[0] = (g0);                                                                \
		o[1] = p02_ + p13_;                                                         \
		o[2] = p02_ - p13_;                                                         \
		o[3] = q02_ + q13_;                                                         \
		o[4] = q02_ - q13_;                                                         \
		o[5] = (g3);                                                                \
	} while (0)

// FROM_SIX applies STEP (six values to N, into o[]) to each column of the
// 6x6 values X(XA, k), k = 6 * row + column (scalars or vectors of tiles
// alike, type T), then to each row of the result, and hands each of the
// N*N results to PUT(PA, row, column, value): the input transform (N 6),
// the output transform (4) and the filter transform's adjoint (3).
#define FROM_SIX(T, N, STEP, X, XA, PUT, PA)                                                       \
	do {                                                                                       \
		T s_[N][6];                                                                        \
		for (int b_ = 0; b_ < 6; b_++) {                                                  \
			T c_[N];                                                                   \
			STEP(X(XA, 0 * 6 + b_), X(XA, 1 * 6 + b_), X(XA, 2 * 6 + b_), X(XA, 3 * 6 + b_), X(XA, 4 * 6 + b_), \
			     X(XA, 5 * 6 + b_), c_);                                               \
			for (int a_ = 0; a_ < N; a_++) s_[a_][b_] = c_[a_];                        \
		}                                                                                  \
		for (int a_ = 0; a_ < N; a_++) {                                                   \
			T r_[N];                                                                   \
			STEP(s_[a_][0], s_[a_][1], s_[a_][2], s_[a_][3], s_[a_][4], s_[a_][5], r_); \
			for (int b_ = 0; b_ < N; b_++) PUT(PA, a_, b_, r_[b_]);                    \
		}                                                                                  \
	} while (0)

// Accessors for FROM_SIX: value k of a 6x6 array, of an accessor macro;
// result (i, j) into a plane index for a PUT(plane, value) macro, into a
// 2-D array, into nine taps.
#define SIX_BY_SIX(d, k) d[(k) / 6][(k) % 6]
#define CALL(f, k) f(k)
#define TO_PLANE(put, i, j, v) put((i) * 6 + (j), v)
#define TO_2D(y, i, j, v) y[i][j] = (v)
#define TO_TAPS(v, i, j, x) v[(i) * 3 + (j)] = (x)

// FILTER_TRANSFORM computes G g G^T of the 3x3 filter g (g[k] its k-th
// tap, scalars or vectors of eight filters alike, type T) and hands each
// of the 36 results to PUT(plane index, value).
#define FILTER_TRANSFORM(T, g, PUT)                                       \
	do {                                                              \
		T t_[6][3]; /* G g */                                     \
		for (int j_ = 0; j_ < 3; j_++) {                          \
			T c_[6];                                          \
			G3(g[j_], g[3 + j_], g[6 + j_], c_);              \
			for (int i_ = 0; i_ < 6; i_++) t_[i_][j_] = c_[i_]; \
		}                                                         \
		for (int i_ = 0; i_ < 6; i_++) { /* (G g) G^T */         \
			T r_[6];                                          \
			G3(t_[i_][0], t_[i_][1], t_[i_][2], r_);          \
			for (int j_ = 0; j_ < 6; j_++) PUT(i_ * 6 + j_, r_[j_]); \
		}                                                         \
	} while (0)

// swav_wino_filter takes the filters eight at a time: their taps gathered
// side by side, each of the 36 results one store of eight into its plane.
// One at a time, the stores went to planes a power of two apart (Co*C
// floats), all in the same cache set.
SWAV_CLONES void swav_wino_filter(float *U, const float *w, int Co, int C) {
	const size_t plane = (size_t)Co * C, filters = plane;
	size_t f = 0;
	for (; f + 8 <= filters; f += 8) {
		float taps[9][8];
		for (int l = 0; l < 8; l++)
			for (int k = 0; k < 9; k++) taps[k][l] = w[(f + l) * 9 + k];
		v8f g[9];
		for (int k = 0; k < 9; k++) g[k] = load8(taps[k]);
#define PUT(e, v) store8(U + (e) * plane + f, (v))
		FILTER_TRANSFORM(v8f, g, PUT);
#undef PUT
	}
	for (; f < filters; f++) {
		const float *g = w + f * 9;
#define PUT(e, v) U[(e) * plane + f] = (v)
		FILTER_TRANSFORM(float, g, PUT);
#undef PUT
	}
}

// INPUT_TRANSFORM computes B^T d B of the 6x6 tile d, of scalars or of
// vectors of tiles alike (type T), and hands each of the 36 results to
// PUT(plane index, value).
#define INPUT_TRANSFORM(T, d, PUT) FROM_SIX(T, 6, BT6, SIX_BY_SIX, d, TO_PLANE, PUT)

// PICK8 and PICK4 take column b of eight (four) tiles 4 apart out of the
// two vectors lo and hi, a row's 32 (16) floats from the first tile's
// column 0 on: one vpermt2ps on AVX-512.
#define PICK8(lo, hi, b) __builtin_shufflevector(lo, hi, b, b + 4, b + 8, b + 12, b + 16, b + 20, b + 24, b + 28)
#define PICK4(lo, hi, b) __builtin_shufflevector(lo, hi, b, b + 4, b + 8, b + 12)

// COLUMNS gives d[0..5] the six columns of eight (VW: v16f, LOADW:
// load16, PICK: PICK8) or four (v8f, load8, PICK4) tiles, the first half
// of them from the row at lo on, the second from hi on (lo's next 16 (8)
// columns, or another row's): the first four columns from one pair of
// loads, the last two from a pair four columns on.
#define COLUMNS(VW, LOADW, PICK, lo, hi, d)                                          \
	do {                                                                          \
		const VW l0_ = LOADW(lo), l1_ = LOADW(hi);                             \
		const VW h0_ = LOADW((lo) + 4), h1_ = LOADW((hi) + 4);                 \
		d[0] = PICK(l0_, l1_, 0);                                              \
		d[1] = PICK(l0_, l1_, 1);                                              \
		d[2] = PICK(l0_, l1_, 2);                                              \
		d[3] = PICK(l0_, l1_, 3);                                              \
		d[4] = PICK(h0_, h1_, 0);                                              \
		d[5] = PICK(h0_, h1_, 1);                                              \
	} while (0)

// MASK_EDGES zeroes column 0 of the tiles whose keepL is 0 and column 5 of
// those whose keepR is 0, n tiles (VI: their int vectors) from tj on.
#define MASK_EDGES(VF, VI, d, tj)                                   \
	do {                                                        \
		VI mL_, mR_;                                        \
		memcpy(&mL_, keepL + (tj), sizeof mL_);             \
		memcpy(&mR_, keepR + (tj), sizeof mR_);             \
		for (int a_ = 0; a_ < 6; a_++) {                    \
			d[a_][0] = (VF)((VI)d[a_][0] & mL_);        \
			d[a_][5] = (VF)((VI)d[a_][5] & mR_);        \
		}                                                   \
	} while (0)

// input_tile transforms the 6x6 tile d into 36 values, one per plane.
static inline void input_tile(float d[6][6], float *o, size_t plane) {
#define PUT(k, v) o[(k) * plane] = (v)
	INPUT_TRANSFORM(float, d, PUT);
#undef PUT
}

// input_row transforms one row of tw tiles from six rows of input, r[a]
// pointing at row a's column -1 and each readable to column 4*tw+4: eight
// (then four) tiles at a time, each of the 36 results one unit-stride
// store. Where r2 is not NULL, tw is 8 and its last four tiles are the
// first four of the rows r2 (the next row of tiles of an image four tiles
// wide: two rows in one vector). Where keepL is not NULL, column 0 of a
// tile whose keepL is 0 and column 5 where keepR is 0 read as zero (the
// image's padding, not the neighbouring pixels the row pointers reach);
// the masks are bitwise, so a neighbour's NaN or Inf does not leak through.
static inline __attribute__((always_inline)) void input_row(const float *const r[6], const float *const r2[6], int tw, float *o,
							    size_t plane, const int *keepL, const int *keepR) {
	int tj = 0;
	for (; tj + 8 <= tw; tj += 8) {
		v8f d[6][6];
		for (int a = 0; a < 6; a++) COLUMNS(v16f, load16, PICK8, r[a] + 4 * tj, r2 ? r2[a] : r[a] + 4 * tj + 16, d[a]);
		if (keepL) MASK_EDGES(v8f, v8i, d, tj);
#define PUT(k, v) store8(o + (k) * plane + tj, (v))
		INPUT_TRANSFORM(v8f, d, PUT);
#undef PUT
	}
	for (; tj + 4 <= tw; tj += 4) {
		v4f d[6][6];
		for (int a = 0; a < 6; a++) COLUMNS(v8f, load8, PICK4, r[a] + 4 * tj, r[a] + 4 * tj + 8, d[a]);
		if (keepL) MASK_EDGES(v4f, v4i, d, tj);
#define PUT(k, v) store4(o + (k) * plane + tj, (v))
		INPUT_TRANSFORM(v4f, d, PUT);
#undef PUT
	}
	for (; tj < tw; tj++) {
		float d[6][6];
		for (int a = 0; a < 6; a++)
			for (int b = 0; b < 6; b++) d[a][b] = r[a][4 * tj + b];
		if (keepL)
			for (int a = 0; a < 6; a++) {
				if (!keepL[tj]) d[a][0] = 0;
				if (!keepR[tj]) d[a][5] = 0;
			}
		input_tile(d, o + tj, plane);
	}
}

// SMALL_TW: images at most this many tiles wide are transformed a row of
// tiles of up to GROUP images at a time, their rows side by side, so that
// the vector loops get 8 tiles at once where an image row has only 1-3
// (their tiles then ordered by tile row, then image). Measured with
// F(2x2, 3x3) on edge-small's 4x4 layer (128 channels, 256 images):
// 1.20-1.31x in all three products; with larger images, whose tiles spread
// over a whole chunk this way, the filter gradient ran at half the speed.
#define GROUP 64 // SMALL_TW is in winograd.h

// input_group transforms tile row ti of images [g0, g1) of channel img
// (pointing at image 0), their tiles tw apart in the group's row o: the
// six input rows of every image side by side in pad (4*tw columns each,
// column -1 first; rows outside the image read pad's last row, all zeros), tiles on an image's left and right edges masked
// (keepL, keepR) so that no tile reads its neighbour's columns.
static inline __attribute__((always_inline)) void input_group(const float *img, size_t imgStride, int H, int W, int ti,
							       int g0, int g1, float *pad, int ld, const int *keepL,
							       const int *keepR, int tw, float *o, size_t plane) {
	const float *r[6];
	for (int a = 0; a < 6; a++) {
		const int i = 4 * ti - 1 + a;
		r[a] = i >= 0 && i < H ? pad + a * ld : pad + 6 * ld; // the last row of pad stays zero
		for (int n = g0; n < g1 && i >= 0 && i < H; n++)
			copy_floats(pad + a * ld + 1 + (n - g0) * 4 * tw, img + (size_t)n * imgStride + (size_t)i * W, W);
	}
	input_row(r, NULL, (g1 - g0) * tw, o, plane, keepL, keepR);
}

// PAIRS_OF_ROWS: images 16 wide (four tiles to a row) take two rows of
// tiles per vector of eight, in the input, output and output-gradient
// transforms alike.
#define PAIRS_OF_ROWS(W) ((W) == 16)

SWAV_CLONES void swav_wino_input(float *V, size_t plane, const float *x, int C, int N, int H, int W, int n0, int n1, int c0, int c1,
				 int nrshift) {
	const int th = (H + 3) / 4, tw = (W + 3) / 4, nb = n1 - n0;
	const size_t T = (size_t)nb * th * tw;
	if (tw <= SMALL_TW) {
		const int ld = GROUP * 4 * tw + 16;
		float pad[7 * ld];
		int keepL[GROUP * tw], keepR[GROUP * tw];
		memset(pad, 0, sizeof pad); // the columns past W of each image stay 0
		for (int t = 0; t < GROUP * tw; t++) {
			keepL[t] = t % tw == 0 ? 0 : -1;
			keepR[t] = t % tw == tw - 1 ? 0 : -1;
		}
		for (int c = c0; c < c1; c++)
			for (int ti = 0; ti < th; ti++)
				for (int g0 = n0; g0 < n1; g0 += GROUP) {
					const int g1 = g0 + GROUP < n1 ? g0 + GROUP : n1;
					input_group(x + (size_t)c * N * H * W, (size_t)H * W, H, W, ti, g0, g1, pad, ld, keepL, keepR, tw,
						    V + (size_t)c * T + ((size_t)ti * nb + (g0 - n0)) * tw, plane);
				}
		return;
	}
	// Rows are read where they lie, from column -1: a row's column -1 and
	// the columns past its end are its neighbours' pixels, so the tiles on
	// the image's edges have those columns masked (keepL, keepR), and the
	// copies that had padded every row are spared (and the loads just
	// after them, which stalled on stores not yet written). Only the first
	// row of x and its last are read from zero-padded copies, so that no
	// load reaches outside x; and widths no multiple of 4 (the last tile's
	// columns past W must read 0) copy every row. Images 16 wide (four
	// tiles) take two rows of tiles per vector of eight.
	const int ld = 4 * tw + 16, direct = W % 4 == 0, pairs = PAIRS_OF_ROWS(W);
	float pad[9 * ld]; // zeros, the first and last rows of x, six slots for copied rows
	memset(pad, 0, sizeof pad);
	const float *zero = pad;
	float *first = pad + ld, *last = pad + 2 * ld, *slots = pad + 3 * ld;
	int keepL[2 * tw + 8], keepR[2 * tw + 8];
	for (int t = 0; t < 2 * tw + 8; t++) {
		keepL[t] = t % tw == 0 ? 0 : -1;
		keepR[t] = t % tw == tw - 1 ? 0 : -1;
	}
	if (direct) {
		copy_floats(first + 1, x, W);
		copy_floats(last + 1, x + ((size_t)C * N * H - 1) * W, W);
	}
	for (int c = c0; c < c1; c++)
		for (int n = n0; n < n1; n++) {
			const float *img = x + ((size_t)c * N + n) * H * W;
			const int isFirst = c == 0 && n == 0, isLast = c == C - 1 && n == N - 1;
			for (int ti = 0; ti < th; ti++) {
				const float *r[6], *r2[6];
				const int two = pairs && ti + 1 < th;
				for (int a = 0; a < 6 * (1 + two); a++) {
					const int i = 4 * ti - 1 + (a < 6 ? a : a - 2);
					const float **row = a < 6 ? r + a : r2 + a - 6;
					if (i < 0 || i >= H)
						*row = zero;
					else if (!direct) {
						float *s = slots + a * ld;
						copy_floats(s + 1, img + (size_t)i * W, W);
						*row = s;
					} else if (i == 0 && isFirst)
						*row = first;
					else if (i == H - 1 && isLast)
						*row = last;
					else
						*row = img + (size_t)i * W - 1;
				}
				const size_t t0 = ((size_t)(n - n0) * th + ti) * tw;
				ti += two;
				if (!nrshift) {
					input_row(r, two ? r2 : NULL, tw * (1 + two), V + (size_t)c * T + t0, plane, keepL, keepR);
					continue;
				}
				// Packed for the product (swav_sgemm_packed_b): eight
				// (four) tiles at a time, each eight (four) within one
				// panel.
				const int step = two || tw % 8 == 0 ? 8 : 4;
				for (int tj = 0; tj < tw * (1 + two); tj += step) {
					const size_t t = t0 + tj, nr = (size_t)1 << nrshift;
					const float *rs[6];
					for (int a = 0; a < 6; a++) rs[a] = r[a] + 4 * tj;
					input_row(rs, two ? r2 : NULL, step, V + (t >> nrshift) * C * nr + (size_t)c * nr + (t & (nr - 1)),
						  plane, keepL + tj, keepR + tj);
				}
			}
		}
}

// OUTPUT_TRANSFORM computes A^T m A of the tile whose 36 values M(k)
// gives (scalars or vectors of tiles alike, type T) into y[4][4].
#define OUTPUT_TRANSFORM(T, M, y) FROM_SIX(T, 4, AT6, CALL, M, TO_2D, y)

// store_quads8 writes four columns of eight tiles, y[c] holding column c,
// as the 32 floats of their row, out[4k+c] = y[c][k]: the first four
// tiles' 16 at lo, the last four's at hi (either skipped where NULL).
static inline __attribute__((always_inline)) void store_quads8(float *lo, float *hi, const v8f y[4]) {
	const v8f a = __builtin_shufflevector(y[0], y[1], 0, 8, 1, 9, 2, 10, 3, 11);
	const v8f b = __builtin_shufflevector(y[0], y[1], 4, 12, 5, 13, 6, 14, 7, 15);
	const v8f c = __builtin_shufflevector(y[2], y[3], 0, 8, 1, 9, 2, 10, 3, 11);
	const v8f d = __builtin_shufflevector(y[2], y[3], 4, 12, 5, 13, 6, 14, 7, 15);
	if (lo) {
		store8(lo, __builtin_shufflevector(a, c, 0, 1, 8, 9, 2, 3, 10, 11));
		store8(lo + 8, __builtin_shufflevector(a, c, 4, 5, 12, 13, 6, 7, 14, 15));
	}
	if (hi) {
		store8(hi, __builtin_shufflevector(b, d, 0, 1, 8, 9, 2, 3, 10, 11));
		store8(hi + 8, __builtin_shufflevector(b, d, 4, 5, 12, 13, 6, 7, 14, 15));
	}
}

// store_quads4 is store_quads8 for four tiles, all at out.
static inline __attribute__((always_inline)) void store_quads4(float *out, const v4f y[4]) {
	const v8f a = __builtin_shufflevector(y[0], y[1], 0, 4, 1, 5, 2, 6, 3, 7);
	const v8f c = __builtin_shufflevector(y[2], y[3], 0, 4, 1, 5, 2, 6, 3, 7);
	store8(out, __builtin_shufflevector(a, c, 0, 1, 8, 9, 2, 3, 10, 11));
	store8(out + 8, __builtin_shufflevector(a, c, 4, 5, 12, 13, 6, 7, 14, 15));
}

// output_row transforms one row of tw tiles of the products (p, planes
// plane apart) into the four output rows out[a] (NULL past the image's
// last row), of cols columns: the first cols/4 tiles are whole, the rest
// (the last, where cols is no multiple of 4) partial. Where out2 is not
// NULL, tw is 8, cols 32, and the last four tiles go to the rows out2
// (the next row of tiles of an image four tiles wide).
static inline __attribute__((always_inline)) void output_row(const float *restrict p, size_t plane, int tw, int cols,
							     float *const out[4], float *const out2[4]) {
	const int full = cols / 4;
	int tj = 0;
	for (; tj + 8 <= full; tj += 8) { // eight tiles at a time, then four
		v8f y[4][4];
#define M8(k) load8(p + (k) * plane + tj)
		OUTPUT_TRANSFORM(v8f, M8, y);
#undef M8
		for (int a = 0; a < 4; a++)
			store_quads8(out[a] ? out[a] + 4 * tj : NULL, out2 ? out2[a] : out[a] ? out[a] + 4 * tj + 16 : NULL, y[a]);
	}
	for (; tj + 4 <= full; tj += 4) {
		v4f y[4][4];
#define M4(k) load4(p + (k) * plane + tj)
		OUTPUT_TRANSFORM(v4f, M4, y);
#undef M4
		for (int a = 0; a < 4; a++)
			if (out[a]) store_quads4(out[a] + 4 * tj, y[a]);
	}
	for (; tj < tw; tj++) {
		float y[4][4];
#define M1(k) p[(k) * plane + tj]
		OUTPUT_TRANSFORM(float, M1, y);
#undef M1
		for (int a = 0; a < 4; a++)
			for (int b = 0; b < 4 && 4 * tj + b < cols; b++)
				if (out[a]) out[a][4 * tj + b] = y[a][b];
	}
}

// swav_epilogue is swav_wino_output's batch norm, residual and ReLU.
typedef struct {
	const float *mu, *scale, *shift, *res;
	int relu;
} swav_epilogue;

// epilogue applies ep to output channel co's row of W values at offset
// off of y, just written and still in L1.
static inline __attribute__((always_inline)) void epilogue(float *y, size_t off, int W, int co, const swav_epilogue *ep) {
	normalize_row(y + off, y + off, ep->res ? ep->res + off : NULL, W, ep->mu[co], ep->scale[co], ep->shift[co], ep->relu);
}

SWAV_CLONES void swav_wino_output(float *y, const float *M, size_t plane, int Co, int N, int H, int W, int n0, int n1, int o0, int o1,
				  const float *mu, const float *scale, const float *shift, const float *res, int relu) {
	const swav_epilogue epi = {mu, scale, shift, res, relu}, *ep = mu ? &epi : NULL;
	const int th = (H + 3) / 4, tw = (W + 3) / 4, nb = n1 - n0;
	const size_t T = (size_t)nb * th * tw;
	if (tw <= SMALL_TW) {
		// A group's four output rows side by side in rows (4*tw columns
		// per image), then copied out image by image.
		const int L = GROUP * 4 * tw;
		float rows[4 * L];
		for (int co = o0; co < o1; co++)
			for (int ti = 0; ti < th; ti++)
				for (int g0 = n0; g0 < n1; g0 += GROUP) {
					const int g1 = g0 + GROUP < n1 ? g0 + GROUP : n1, tiles = (g1 - g0) * tw;
					float *out[4];
					for (int a = 0; a < 4; a++) out[a] = 4 * ti + a < H ? rows + a * L : NULL;
					output_row(M + (size_t)co * T + ((size_t)ti * nb + (g0 - n0)) * tw, plane, tiles, 4 * tiles, out, NULL);
					for (int n = g0; n < g1; n++)
						for (int a = 0; a < 4 && out[a]; a++) {
							const size_t off = ((size_t)co * N + n) * H * W + (size_t)(4 * ti + a) * W;
							copy_floats(y + off, out[a] + (n - g0) * 4 * tw, W);
							if (ep) epilogue(y, off, W, co, ep);
						}
				}
		return;
	}
	const int pairs = PAIRS_OF_ROWS(W);
	for (int co = o0; co < o1; co++)
		for (int n = n0; n < n1; n++) {
			float *img = y + ((size_t)co * N + n) * H * W;
			for (int ti = 0; ti < th; ti++) {
				const int two = pairs && ti + 1 < th;
				float *out[8];
				for (int a = 0; a < 4 * (1 + two); a++) out[a] = 4 * ti + a < H ? img + (size_t)(4 * ti + a) * W : NULL;
				output_row(M + (size_t)co * T + ((size_t)(n - n0) * th + ti) * tw, plane, tw * (1 + two), W * (1 + two), out,
					   two ? out + 4 : NULL);
				if (ep)
					for (int a = 0; a < 4 * (1 + two) && out[a]; a++) epilogue(y, (size_t)(out[a] - y), W, co, ep);
				ti += two;
			}
		}
}

// OUTGRAD_TRANSFORM computes A g A^T of the 4x4 gradient tile g, the
// adjoint of the output transform, of scalars or vectors of tiles alike,
// and hands each of the 36 results to PUT(plane index, value).
#define OUTGRAD_TRANSFORM(T, g, PUT)                                                \
	do {                                                                        \
		T t_[6][4]; /* A g */                                               \
		for (int b_ = 0; b_ < 4; b_++) {                                    \
			T c_[6];                                                    \
			A4(g[0][b_], g[1][b_], g[2][b_], g[3][b_], c_);             \
			for (int a_ = 0; a_ < 6; a_++) t_[a_][b_] = c_[a_];         \
		}                                                                   \
		for (int a_ = 0; a_ < 6; a_++) { /* (A g) A^T */                   \
			T r_[6];                                                    \
			A4(t_[a_][0], t_[a_][1], t_[a_][2], t_[a_][3], r_);         \
			for (int b_ = 0; b_ < 6; b_++) PUT(a_ * 6 + b_, r_[b_]);    \
		}                                                                   \
	} while (0)

// outgrad_row transforms one row of tw tiles of the output gradient, from
// its four rows r[a] (all zeros past the image's last row) of cols
// columns, into o (planes plane apart); the first cols/4 tiles are whole,
// the rest partial (padding reads as 0). Where r2 is not NULL, tw is 8,
// cols 32, and the last four tiles come from the rows r2 (the next row of
// tiles of an image four tiles wide).
static inline __attribute__((always_inline)) void outgrad_row(const float *const r[4], const float *const r2[4], int tw, int cols,
							      float *o, size_t plane) {
	const int full = cols / 4;
	int tj = 0;
	for (; tj + 8 <= full; tj += 8) { // eight tiles at a time, as four below
		v8f g[4][4];
		for (int a = 0; a < 4; a++) {
			const v16f l0 = load16(r[a] + 4 * tj), l1 = load16(r2 ? r2[a] : r[a] + 4 * tj + 16);
			g[a][0] = PICK8(l0, l1, 0);
			g[a][1] = PICK8(l0, l1, 1);
			g[a][2] = PICK8(l0, l1, 2);
			g[a][3] = PICK8(l0, l1, 3);
		}
#define PUT(k, v) store8(o + (k) * plane + tj, (v))
		OUTGRAD_TRANSFORM(v8f, g, PUT);
#undef PUT
	}
	for (; tj + 4 <= full; tj += 4) {
		v4f g[4][4];
		for (int a = 0; a < 4; a++) {
			const v8f l0 = load8(r[a] + 4 * tj), l1 = load8(r[a] + 4 * tj + 8);
			g[a][0] = PICK4(l0, l1, 0);
			g[a][1] = PICK4(l0, l1, 1);
			g[a][2] = PICK4(l0, l1, 2);
			g[a][3] = PICK4(l0, l1, 3);
		}
#define PUT(k, v) store4(o + (k) * plane + tj, (v))
		OUTGRAD_TRANSFORM(v4f, g, PUT);
#undef PUT
	}
	for (; tj < tw; tj++) {
		float g[4][4];
		for (int a = 0; a < 4; a++)
			for (int b = 0; b < 4; b++) g[a][b] = 4 * tj + b < cols ? r[a][4 * tj + b] : 0;
#define PUT(k, v) o[(k) * plane + tj] = (v)
		OUTGRAD_TRANSFORM(float, g, PUT);
#undef PUT
	}
}

SWAV_CLONES void swav_wino_outgrad(float *M, size_t plane, const float *dy, int Co, int N, int H, int W, int n0, int n1, int o0, int o1) {
	const int th = (H + 3) / 4, tw = (W + 3) / 4, nb = n1 - n0;
	const size_t T = (size_t)nb * th * tw;
	if (tw <= SMALL_TW) {
		// A group's four gradient rows copied side by side into rows
		// (4*tw columns per image, the columns past W zero; rows past H
		// read the last row, all zeros), then transformed as one row.
		const int L = GROUP * 4 * tw + 16;
		float rows[5 * L];
		memset(rows, 0, sizeof rows);
		for (int co = o0; co < o1; co++)
			for (int ti = 0; ti < th; ti++)
				for (int g0 = n0; g0 < n1; g0 += GROUP) {
					const int g1 = g0 + GROUP < n1 ? g0 + GROUP : n1, tiles = (g1 - g0) * tw;
					const float *r[4];
					for (int a = 0; a < 4; a++) r[a] = 4 * ti + a < H ? rows + a * L : rows + 4 * L; // the last row stays zero
					for (int n = g0; n < g1; n++) {
						const float *img = dy + ((size_t)co * N + n) * H * W;
						for (int a = 0; a < 4 && 4 * ti + a < H; a++)
							copy_floats(rows + a * L + (n - g0) * 4 * tw, img + (size_t)(4 * ti + a) * W, W);
					}
					outgrad_row(r, NULL, tiles, 4 * tiles, M + (size_t)co * T + ((size_t)ti * nb + (g0 - n0)) * tw, plane);
				}
		return;
	}
	const int pairs = PAIRS_OF_ROWS(W);
	float zeros[W];
	memset(zeros, 0, sizeof zeros);
	for (int co = o0; co < o1; co++)
		for (int n = n0; n < n1; n++) {
			const float *img = dy + ((size_t)co * N + n) * H * W;
			for (int ti = 0; ti < th; ti++) {
				const int two = pairs && ti + 1 < th;
				const float *r[8];
				for (int a = 0; a < 4 * (1 + two); a++) r[a] = 4 * ti + a < H ? img + (size_t)(4 * ti + a) * W : zeros;
				outgrad_row(r, two ? r + 4 : NULL, tw * (1 + two), W * (1 + two), M + (size_t)co * T + ((size_t)(n - n0) * th + ti) * tw,
					    plane);
				ti += two;
			}
		}
}

// FILTER_GRAD computes G^T dU G of the 36 values u(e) (scalars or vectors
// of eight filters alike, type T), the adjoint of FILTER_TRANSFORM, into
// the 3x3 taps v[9].
#define FILTER_GRAD(T, u, v) FROM_SIX(T, 3, GT6, CALL, u, TO_TAPS, v)

// swav_wino_filter_grad takes the filters eight at a time, as
// swav_wino_filter: one load of eight from each of the 36 planes.
SWAV_CLONES void swav_wino_filter_grad(float *dw, const float *dU, int Co, int C, float beta) {
	const size_t plane = (size_t)Co * C, filters = plane;
	size_t f = 0;
	for (; f + 8 <= filters; f += 8) {
		v8f v[9];
#define U8(e) load8(dU + (e) * plane + f)
		FILTER_GRAD(v8f, U8, v);
#undef U8
		float taps[9][8];
		for (int k = 0; k < 9; k++) store8(taps[k], v[k]);
		for (int l = 0; l < 8; l++) {
			float *g = dw + (f + l) * 9;
			for (int k = 0; k < 9; k++) g[k] = (beta != 0 ? beta * g[k] : 0) + taps[k][l];
		}
	}
	for (; f < filters; f++) {
		float v[9];
#define U1(e) dU[(e) * plane + f]
		FILTER_GRAD(float, U1, v);
#undef U1
		float *g = dw + f * 9;
		for (int k = 0; k < 9; k++) g[k] = (beta != 0 ? beta * g[k] : 0) + v[k];
	}
}
