#include <stddef.h>
#include <string.h>
#include "norm_row.h"
#include "simd.h"
#include "winograd.h"

// FILTER_TRANSFORM computes G g G^T of the 3x3 filter g (g[k] its k-th
// tap, scalars or vectors of eight filters alike, type T) and hands each
// of the 16 results to PUT(plane index, value).
#define FILTER_TRANSFORM(T, g, PUT)                                              \
	do {                                                                     \
		T t_[4][3]; /* G g */                                            \
		for (int j_ = 0; j_ < 3; j_++) {                                 \
			t_[0][j_] = g[j_];                                       \
			t_[1][j_] = 0.5f * (g[j_] + g[3 + j_] + g[6 + j_]);      \
			t_[2][j_] = 0.5f * (g[j_] - g[3 + j_] + g[6 + j_]);      \
			t_[3][j_] = g[6 + j_];                                   \
		}                                                                \
		for (int i_ = 0; i_ < 4; i_++) { /* (G g) G^T */                \
			PUT(i_ * 4 + 0, t_[i_][0]);                              \
			PUT(i_ * 4 + 1, 0.5f * (t_[i_][0] + t_[i_][1] + t_[i_][2])); \
			PUT(i_ * 4 + 2, 0.5f * (t_[i_][0] - t_[i_][1] + t_[i_][2])); \
			PUT(i_ * 4 + 3, t_[i_][2]);                              \
		}                                                                \
	} while (0)

// swav_wino_filter takes the filters eight at a time: their taps gathered
// side by side, each of the 16 results one store of eight into its plane.
// One at a time, the 16 stores went to planes a power of two apart (Co*C
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

// INPUT_TRANSFORM computes B^T d B of the 4x4 tile d, of scalars or of
// vectors of four tiles alike (type T), and hands each of the 16 results
// to PUT(plane index, value).
#define INPUT_TRANSFORM(T, d, PUT)                                    \
	do {                                                          \
		T t_[4][4]; /* B^T d */                               \
		for (int b_ = 0; b_ < 4; b_++) {                      \
			t_[0][b_] = d[0][b_] - d[2][b_];              \
			t_[1][b_] = d[1][b_] + d[2][b_];              \
			t_[2][b_] = d[2][b_] - d[1][b_];              \
			t_[3][b_] = d[1][b_] - d[3][b_];              \
		}                                                     \
		for (int a_ = 0; a_ < 4; a_++) { /* (B^T d) B */     \
			PUT(a_ * 4 + 0, t_[a_][0] - t_[a_][2]);       \
			PUT(a_ * 4 + 1, t_[a_][1] + t_[a_][2]);       \
			PUT(a_ * 4 + 2, t_[a_][2] - t_[a_][1]);       \
			PUT(a_ * 4 + 3, t_[a_][1] - t_[a_][3]);       \
		}                                                     \
	} while (0)

// input_tile transforms the 4x4 tile d into 16 values, one per plane.
static inline void input_tile(float d[4][4], float *o, size_t plane) {
#define PUT(k, v) o[(k) * plane] = (v)
	INPUT_TRANSFORM(float, d, PUT);
#undef PUT
}

// input_row transforms one row of tw tiles from four rows of input, r[a]
// pointing at row a's column -1 and each readable to column 2*tw+10: eight (then four) tiles at a time, the columns of neighbouring
// tiles picked out of three loads of the row by shuffles, each of the 16
// results one unit-stride store.
static inline __attribute__((always_inline)) void input_row(const float *const r[4], int tw, float *o, size_t plane) {
	int tj = 0;
	for (; tj + 8 <= tw; tj += 8) { // eight tiles at a time, as four below
		v8f d[4][4];
		for (int a = 0; a < 4; a++) {
			const float *row = r[a] + 2 * tj;
			const v8f l0 = load8(row), l1 = load8(row + 8), l2 = load8(row + 16);
			d[a][0] = __builtin_shuffle(l0, l1, (v8i){0, 2, 4, 6, 8, 10, 12, 14});
			d[a][1] = __builtin_shuffle(l0, l1, (v8i){1, 3, 5, 7, 9, 11, 13, 15});
			d[a][2] = __builtin_shuffle(__builtin_shuffle(l0, l1, (v8i){2, 4, 6, 8, 10, 12, 14, 0}), l2,
						    (v8i){0, 1, 2, 3, 4, 5, 6, 8});
			d[a][3] = __builtin_shuffle(__builtin_shuffle(l0, l1, (v8i){3, 5, 7, 9, 11, 13, 15, 0}), l2,
						    (v8i){0, 1, 2, 3, 4, 5, 6, 9});
		}
#define PUT(k, v) store8(o + (k) * plane + tj, (v))
		INPUT_TRANSFORM(v8f, d, PUT);
#undef PUT
	}
	for (; tj + 4 <= tw; tj += 4) {
		v4f d[4][4];
		for (int a = 0; a < 4; a++) {
			const float *row = r[a] + 2 * tj;
			const v4f l0 = load4(row), l1 = load4(row + 4), l2 = load4(row + 8);
			d[a][0] = __builtin_shuffle(l0, l1, (v4i){0, 2, 4, 6});
			d[a][1] = __builtin_shuffle(l0, l1, (v4i){1, 3, 5, 7});
			d[a][2] = __builtin_shuffle(__builtin_shuffle(l0, l1, (v4i){2, 4, 6, 0}), l2, (v4i){0, 1, 2, 4});
			d[a][3] = __builtin_shuffle(__builtin_shuffle(l0, l1, (v4i){3, 5, 7, 0}), l2, (v4i){0, 1, 2, 5});
		}
#define PUT(k, v) store4(o + (k) * plane + tj, (v))
		INPUT_TRANSFORM(v4f, d, PUT);
#undef PUT
	}
	for (; tj < tw; tj++) {
		float d[4][4];
		for (int a = 0; a < 4; a++)
			for (int b = 0; b < 4; b++) d[a][b] = r[a][2 * tj + b];
		input_tile(d, o + tj, plane);
	}
}

// input_row_masked is input_row for a row of tiles of several images side
// by side: column 0 of a tile where keepL is 0 and column 3 where keepR is
// 0 read as zero (the image's padding, not its neighbour's pixels). The
// masks are bitwise, so a neighbour's NaN or Inf does not leak through.
static inline __attribute__((always_inline)) void input_row_masked(const float *r, size_t ld, int tw, float *o, size_t plane,
								    const int *keepL, const int *keepR) {
	int tj = 0;
	for (; tj + 8 <= tw; tj += 8) {
		v8f d[4][4];
		v8i mL, mR;
		memcpy(&mL, keepL + tj, sizeof mL);
		memcpy(&mR, keepR + tj, sizeof mR);
		for (int a = 0; a < 4; a++) {
			const float *row = r + a * ld + 2 * tj;
			const v8f l0 = load8(row), l1 = load8(row + 8), l2 = load8(row + 16);
			d[a][0] = (v8f)((v8i)__builtin_shuffle(l0, l1, (v8i){0, 2, 4, 6, 8, 10, 12, 14}) & mL);
			d[a][1] = __builtin_shuffle(l0, l1, (v8i){1, 3, 5, 7, 9, 11, 13, 15});
			d[a][2] = __builtin_shuffle(__builtin_shuffle(l0, l1, (v8i){2, 4, 6, 8, 10, 12, 14, 0}), l2,
						    (v8i){0, 1, 2, 3, 4, 5, 6, 8});
			d[a][3] = (v8f)((v8i)__builtin_shuffle(__builtin_shuffle(l0, l1, (v8i){3, 5, 7, 9, 11, 13, 15, 0}), l2,
								(v8i){0, 1, 2, 3, 4, 5, 6, 9}) & mR);
		}
#define PUT(k, v) store8(o + (k) * plane + tj, (v))
		INPUT_TRANSFORM(v8f, d, PUT);
#undef PUT
	}
	for (; tj < tw; tj++) {
		float d[4][4];
		for (int a = 0; a < 4; a++)
			for (int b = 0; b < 4; b++) d[a][b] = r[a * ld + 2 * tj + b];
		for (int a = 0; a < 4; a++) {
			if (!keepL[tj]) d[a][0] = 0;
			if (!keepR[tj]) d[a][3] = 0;
		}
		input_tile(d, o + tj, plane);
	}
}

// SMALL_TW: images at most this many tiles wide are transformed a row of
// tiles of up to GROUP images at a time, their rows side by side, so that
// the vector loops get 8 tiles at once where an image row has only 2 or 3
// (their tiles then ordered by tile row, then image). Measured on
// edge-small's 4x4 layer (128 channels, 256 images): 1.20-1.31x in all
// three products; at 8x8 (4 tiles a row, the four-tile loop) no gain, and
// with larger images, whose tiles spread over a whole chunk this way, the
// filter gradient ran at half the speed.
#define GROUP 64 // SMALL_TW is in winograd.h

// input_group transforms tile row ti of images [g0, g1) of channel img
// (pointing at image 0), their tiles tw apart in the group's row o: the
// four input rows of every image side by side in pad (2*tw columns each,
// column -1 first), tiles on an image's left and right edges masked
// (keepL, keepR) so that no tile reads its neighbour's columns.
static inline __attribute__((always_inline)) void input_group(const float *img, size_t imgStride, int H, int W, int ti,
							       int g0, int g1, float *pad, int ld, const int *keepL,
							       const int *keepR, int tw, float *o, size_t plane) {
	for (int a = 0; a < 4; a++) {
		const int i = 2 * ti - 1 + a;
		for (int n = g0; n < g1; n++) {
			float *dst = pad + a * ld + 1 + (n - g0) * 2 * tw;
			if (i >= 0 && i < H)
				copy_floats(dst, img + (size_t)n * imgStride + (size_t)i * W, W);
			else
				memset(dst, 0, sizeof(float) * W);
		}
	}
	input_row_masked(pad, ld, (g1 - g0) * tw, o, plane, keepL, keepR);
}

SWAV_CLONES void swav_wino_input(float *V, size_t plane, const float *x, int C, int N, int H, int W, int n0, int n1, int c0, int c1,
				 int nrshift) {
	const int th = (H + 1) / 2, tw = (W + 1) / 2, nb = n1 - n0;
	const size_t T = (size_t)nb * th * tw;
	if (tw <= SMALL_TW) {
		const int ld = GROUP * 2 * tw + 12;
		float pad[4 * ld];
		int keepL[GROUP * tw], keepR[GROUP * tw];
		memset(pad, 0, sizeof pad); // the odd column of odd widths stays 0
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
	// Each row of tiles is read from its four input rows copied into pad,
	// column -1 first and zeros around, so that the tiles on the image's
	// edges (28 of the 64 at 16x16) go through the same vector code as the
	// rest, without a bounds check per value. The rows go round four slots
	// (input row i in slot (i+1)%4), so the two that a row of tiles shares
	// with the next are copied once.
	const int ld = 2 * tw + 12;
	float pad[4 * ld];
	memset(pad, 0, sizeof pad);
	for (int c = c0; c < c1; c++)
		for (int n = n0; n < n1; n++) {
			const float *img = x + ((size_t)c * N + n) * H * W;
			for (int ti = 0; ti < th; ti++) {
				const float *r[4];
				for (int a = 0; a < 4; a++) {
					const int i = 2 * ti - 1 + a;
					float *slot = pad + ((i + 1) & 3) * ld;
					r[a] = slot;
					if (ti > 0 && a < 2) continue; // copied for the row of tiles above
					if (i >= 0 && i < H)
						copy_floats(slot + 1, img + (size_t)i * W, W);
					else
						memset(slot + 1, 0, sizeof(float) * W);
				}
				const size_t t0 = ((size_t)(n - n0) * th + ti) * tw;
				if (!nrshift) {
					input_row(r, tw, V + (size_t)c * T + t0, plane);
					continue;
				}
				// Packed for the product (swav_sgemm_packed_b): eight
				// tiles at a time, each eight within one panel.
				for (int tj = 0; tj < tw; tj += 8) {
					const size_t t = t0 + tj, nr = (size_t)1 << nrshift;
					const float *r8[4] = {r[0] + 2 * tj, r[1] + 2 * tj, r[2] + 2 * tj, r[3] + 2 * tj};
					input_row(r8, 8, V + (t >> nrshift) * C * nr + (size_t)c * nr + (t & (nr - 1)), plane);
				}
			}
		}
}

// OUTPUT_TILES does A^T m A for L tiles from tj on (VT: vectors of L
// floats): each of the 16 values is one load of L tiles, and the 2x2
// results are interleaved into the two output rows by the shuffles LO and
// HI (the first and second half of each row's 2L values).
#define OUTPUT_TILES(VT, VI, LOAD, STORE, L, LO, HI)                                                              \
	do {                                                                                                      \
		VT s_[2][4];                                                                                      \
		for (int b_ = 0; b_ < 4; b_++) {                                                                  \
			const VT m0_ = LOAD(p + (0 * 4 + b_) * plane + tj), m1_ = LOAD(p + (1 * 4 + b_) * plane + tj); \
			const VT m2_ = LOAD(p + (2 * 4 + b_) * plane + tj), m3_ = LOAD(p + (3 * 4 + b_) * plane + tj); \
			s_[0][b_] = m0_ + m1_ + m2_;                                                              \
			s_[1][b_] = m1_ - m2_ - m3_;                                                              \
		}                                                                                                 \
		for (int r_ = 0; r_ < 2; r_++) {                                                                  \
			float *out_ = r_ ? out1 : out0;                                                           \
			if (!out_) break;                                                                         \
			const VT e_ = s_[r_][0] + s_[r_][1] + s_[r_][2], f_ = s_[r_][1] - s_[r_][2] - s_[r_][3]; \
			STORE(out_ + 2 * tj, __builtin_shuffle(e_, f_, LO));                                      \
			STORE(out_ + 2 * tj + L, __builtin_shuffle(e_, f_, HI));                                  \
		}                                                                                                 \
	} while (0)

// output_row transforms one row of tw tiles of the products (p, planes
// plane apart) into the output rows out0 and out1 (NULL past the image's
// last row); the first full tiles have both their columns inside, the
// rest (odd widths: the last) only the first.
static inline __attribute__((always_inline)) void output_row(const float *restrict p, size_t plane, int full, int tw,
							     float *restrict out0, float *restrict out1) {
	int tj = 0;
	for (; tj + 8 <= full; tj += 8) // eight tiles at a time, then four
		OUTPUT_TILES(v8f, v8i, load8, store8, 8, ((v8i){0, 8, 1, 9, 2, 10, 3, 11}), ((v8i){4, 12, 5, 13, 6, 14, 7, 15}));
	for (; tj + 4 <= full; tj += 4)
		OUTPUT_TILES(v4f, v4i, load4, store4, 4, ((v4i){0, 4, 1, 5}), ((v4i){2, 6, 3, 7}));
	for (; tj < tw; tj++) {
		float s[2][4];
		for (int b = 0; b < 4; b++) {
			const float m0 = p[(0 * 4 + b) * plane + tj], m1 = p[(1 * 4 + b) * plane + tj];
			const float m2 = p[(2 * 4 + b) * plane + tj], m3 = p[(3 * 4 + b) * plane + tj];
			s[0][b] = m0 + m1 + m2;
			s[1][b] = m1 - m2 - m3;
		}
		const float y00 = s[0][0] + s[0][1] + s[0][2], y01 = s[0][1] - s[0][2] - s[0][3];
		const float y10 = s[1][0] + s[1][1] + s[1][2], y11 = s[1][1] - s[1][2] - s[1][3];
		out0[2 * tj] = y00;
		if (out1) out1[2 * tj] = y10;
		if (tj < full) { // odd W: the last tile's second column is padding
			out0[2 * tj + 1] = y01;
			if (out1) out1[2 * tj + 1] = y11;
		}
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
	const int th = (H + 1) / 2, tw = (W + 1) / 2, nb = n1 - n0;
	const size_t T = (size_t)nb * th * tw;
	if (tw <= SMALL_TW) {
		// A group's two output rows side by side in rows (2*tw columns
		// per image), then copied out image by image.
		const int L = GROUP * 2 * tw;
		float rows[2 * L];
		for (int co = o0; co < o1; co++)
			for (int ti = 0; ti < th; ti++)
				for (int g0 = n0; g0 < n1; g0 += GROUP) {
					const int g1 = g0 + GROUP < n1 ? g0 + GROUP : n1, tiles = (g1 - g0) * tw;
					const int two = 2 * ti + 1 < H;
					output_row(M + (size_t)co * T + ((size_t)ti * nb + (g0 - n0)) * tw, plane, tiles, tiles, rows, two ? rows + L : NULL);
					for (int n = g0; n < g1; n++) {
						const size_t off = ((size_t)co * N + n) * H * W + (size_t)(2 * ti) * W;
						copy_floats(y + off, rows + (n - g0) * 2 * tw, W);
						if (two) copy_floats(y + off + W, rows + L + (n - g0) * 2 * tw, W);
						if (ep) {
							epilogue(y, off, W, co, ep);
							if (two) epilogue(y, off + W, W, co, ep);
						}
					}
				}
		return;
	}
	for (int co = o0; co < o1; co++)
		for (int n = n0; n < n1; n++) {
			float *img = y + ((size_t)co * N + n) * H * W;
			for (int ti = 0; ti < th; ti++) {
				float *out0 = img + (size_t)(2 * ti) * W;
				const int two = 2 * ti + 1 < H;
				output_row(M + (size_t)co * T + ((size_t)(n - n0) * th + ti) * tw, plane, W / 2, tw, out0,
					   two ? out0 + W : NULL);
				if (ep) {
					const size_t off = (size_t)(out0 - y);
					epilogue(y, off, W, co, ep);
					if (two) epilogue(y, off + W, W, co, ep);
				}
			}
		}
}

// outgrad_tile writes A g A^T of the 2x2 gradient tile g (a, b / c, d), the
// adjoint of the output transform, of scalars or vectors of four tiles.
#define OUTGRAD_TRANSFORM(T, a, b, c, d, PUT)                              \
	do {                                                               \
		const T r_[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}}; \
		for (int i_ = 0; i_ < 4; i_++) {                           \
			PUT(i_ * 4 + 0, r_[i_][0]);                        \
			PUT(i_ * 4 + 1, r_[i_][0] + r_[i_][1]);            \
			PUT(i_ * 4 + 2, r_[i_][0] - r_[i_][1]);            \
			PUT(i_ * 4 + 3, -r_[i_][1]);                       \
		}                                                          \
	} while (0)

// outgrad_row transforms one row of tw tiles of the output gradient, from
// its rows r0 and r1 (NULL past the image's last row), into o (planes
// plane apart); the first full tiles have both columns inside the image
// (W columns), the rest are partial.
static inline __attribute__((always_inline)) void outgrad_row(const float *r0, const float *r1, int full, int tw, int W,
							      float *o, size_t plane) {
	int tj = 0;
	if (r1)
		for (; tj + 8 <= full; tj += 8) { // eight tiles at a time, as four below
			const v8f p0 = load8(r0 + 2 * tj), p1 = load8(r0 + 2 * tj + 8);
			const v8f q0 = load8(r1 + 2 * tj), q1 = load8(r1 + 2 * tj + 8);
			const v8f a = __builtin_shuffle(p0, p1, (v8i){0, 2, 4, 6, 8, 10, 12, 14});
			const v8f b = __builtin_shuffle(p0, p1, (v8i){1, 3, 5, 7, 9, 11, 13, 15});
			const v8f c = __builtin_shuffle(q0, q1, (v8i){0, 2, 4, 6, 8, 10, 12, 14});
			const v8f d = __builtin_shuffle(q0, q1, (v8i){1, 3, 5, 7, 9, 11, 13, 15});
#define PUT(k, v) store8(o + (k) * plane + tj, (v))
			OUTGRAD_TRANSFORM(v8f, a, b, c, d, PUT);
#undef PUT
		}
	if (r1)
		for (; tj + 4 <= full; tj += 4) {
			const v4f p0 = load4(r0 + 2 * tj), p1 = load4(r0 + 2 * tj + 4);
			const v4f q0 = load4(r1 + 2 * tj), q1 = load4(r1 + 2 * tj + 4);
			const v4f a = __builtin_shuffle(p0, p1, (v4i){0, 2, 4, 6});
			const v4f b = __builtin_shuffle(p0, p1, (v4i){1, 3, 5, 7});
			const v4f c = __builtin_shuffle(q0, q1, (v4i){0, 2, 4, 6});
			const v4f d = __builtin_shuffle(q0, q1, (v4i){1, 3, 5, 7});
#define PUT(k, v) store4(o + (k) * plane + tj, (v))
			OUTGRAD_TRANSFORM(v4f, a, b, c, d, PUT);
#undef PUT
		}
	for (; tj < tw; tj++) { // partial tiles: padding reads as 0
		const int inside = 2 * tj + 1 < W;
		const float a = r0[2 * tj], b = inside ? r0[2 * tj + 1] : 0;
		const float c = r1 ? r1[2 * tj] : 0, d = r1 && inside ? r1[2 * tj + 1] : 0;
#define PUT(k, v) o[(k) * plane + tj] = (v)
		OUTGRAD_TRANSFORM(float, a, b, c, d, PUT);
#undef PUT
	}
}

SWAV_CLONES void swav_wino_outgrad(float *M, size_t plane, const float *dy, int Co, int N, int H, int W, int n0, int n1, int o0, int o1) {
	const int th = (H + 1) / 2, tw = (W + 1) / 2, nb = n1 - n0;
	const size_t T = (size_t)nb * th * tw;
	if (tw <= SMALL_TW) {
		// A group's two gradient rows copied side by side into rows (2*tw
		// columns per image, the odd column of odd widths and the row
		// past an odd height zero), then transformed as one row.
		const int L = GROUP * 2 * tw;
		float rows[2 * L];
		memset(rows, 0, sizeof rows);
		for (int co = o0; co < o1; co++)
			for (int ti = 0; ti < th; ti++)
				for (int g0 = n0; g0 < n1; g0 += GROUP) {
					const int g1 = g0 + GROUP < n1 ? g0 + GROUP : n1, tiles = (g1 - g0) * tw;
					for (int n = g0; n < g1; n++) {
						const float *img = dy + ((size_t)co * N + n) * H * W + (size_t)(2 * ti) * W;
						copy_floats(rows + (n - g0) * 2 * tw, img, W);
						if (2 * ti + 1 < H)
							copy_floats(rows + L + (n - g0) * 2 * tw, img + W, W);
						else
							memset(rows + L + (n - g0) * 2 * tw, 0, sizeof(float) * W);
					}
					outgrad_row(rows, rows + L, tiles, tiles, 2 * tiles, M + (size_t)co * T + ((size_t)ti * nb + (g0 - n0)) * tw, plane);
				}
		return;
	}
	for (int co = o0; co < o1; co++)
		for (int n = n0; n < n1; n++) {
			const float *img = dy + ((size_t)co * N + n) * H * W;
			for (int ti = 0; ti < th; ti++) {
				const float *r0 = img + (size_t)(2 * ti) * W;
				outgrad_row(r0, 2 * ti + 1 < H ? r0 + W : NULL, W / 2, tw, W,
					    M + (size_t)co * T + ((size_t)(n - n0) * th + ti) * tw, plane);
			}
		}
}

// FILTER_GRAD computes G^T dU G of the 16 values u(e) (scalars or vectors
// of eight filters alike, type T), the adjoint of FILTER_TRANSFORM, into
// the 3x3 taps v[9].
#define FILTER_GRAD(T, u, v)                                                         \
	do {                                                                         \
		T t_[3][4]; /* G^T dU */                                             \
		for (int j_ = 0; j_ < 4; j_++) {                                     \
			const T u0_ = u(0 * 4 + j_), u1_ = u(1 * 4 + j_);            \
			const T u2_ = u(2 * 4 + j_), u3_ = u(3 * 4 + j_);            \
			t_[0][j_] = u0_ + 0.5f * (u1_ + u2_);                        \
			t_[1][j_] = 0.5f * (u1_ - u2_);                              \
			t_[2][j_] = 0.5f * (u1_ + u2_) + u3_;                        \
		}                                                                    \
		for (int i_ = 0; i_ < 3; i_++) { /* (G^T dU) G */                   \
			v[i_ * 3 + 0] = t_[i_][0] + 0.5f * (t_[i_][1] + t_[i_][2]);  \
			v[i_ * 3 + 1] = 0.5f * (t_[i_][1] - t_[i_][2]);              \
			v[i_ * 3 + 2] = 0.5f * (t_[i_][1] + t_[i_][2]) + t_[i_][3];  \
		}                                                                    \
	} while (0)

// swav_wino_filter_grad takes the filters eight at a time, as
// swav_wino_filter: one load of eight from each of the 16 planes.
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
