// im2col and col2im; the Go twins in conv.go are the build without cgo and
// the reference the tests compare these with.
#include <string.h>
#include "lower.h"
#include "simd.h"

// valid_range gives [lo, hi): the output positions o in [0, out) whose input
// position o*stride - pad + tap falls inside [0, in).
static void valid_range(int out, int in, int stride, int pad, int tap, int *lo, int *hi) {
	int l = 0, h = out;
	if (pad - tap > 0) l = (pad - tap + stride - 1) / stride;
	int lim = in - 1 + pad - tap;
	if (lim < 0) h = 0;
	else if (lim / stride + 1 < h) h = lim / stride + 1;
	if (h < l) h = l;
	*lo = l;
	*hi = h;
}

// stride2_taps writes, for the taps kw in [lo, hi), rows[kw * ld + ow] =
// b[2*ow + kw] for ow in [0, Wo), b readable up to b[last]: every tap of a
// stride-2 row is the even lanes of b from kw on, eight (then four)
// outputs from two loads where those stay within b.
static inline __attribute__((always_inline)) void stride2_taps(float *rows, size_t ld, const float *b, int last, int Wo, int lo, int hi) {
	int ow = 0;
	for (; ow + 8 <= Wo && 2 * ow + hi + 14 <= last; ow += 8)
		for (int kw = lo; kw < hi; kw++) {
			const float *s = b + 2 * ow + kw;
			store8(rows + kw * ld + ow, __builtin_shuffle(load8(s), load8(s + 8), (v8i){0, 2, 4, 6, 8, 10, 12, 14}));
		}
	for (; ow + 4 <= Wo && 2 * ow + hi + 6 <= last; ow += 4)
		for (int kw = lo; kw < hi; kw++) {
			const float *s = b + 2 * ow + kw;
			store4(rows + kw * ld + ow, __builtin_shuffle(load4(s), load4(s + 4), (v4i){0, 2, 4, 6}));
		}
	for (; ow < Wo; ow++)
		for (int kw = lo; kw < hi; kw++) rows[kw * ld + ow] = b[2 * ow + kw];
}

// stride2_k3_pad1 is stride2_taps for all three taps of a kernel row of
// a 3x3 kernel with padding 1, on an input row of even width 2*Wo read in
// place: tap 1 is the row's even lanes, tap 2 its odd lanes, and tap 0 the
// odd lanes one output later (the padding's zero first), with no copy
// into a padded buffer (1.29x for 8x8 inputs; at 32x32 the lowering waits
// on the input's first read from L3 either way).
static inline __attribute__((always_inline)) void stride2_k3_pad1(float *rows, size_t ld, const float *src, int Wo) {
	int ow = 0;
	float last = 0; // the input just left of output ow's window
	for (; ow + 8 <= Wo; ow += 8) {
		v8f a = load8(src + 2 * ow), b = load8(src + 2 * ow + 8);
		v8f odd = __builtin_shuffle(a, b, (v8i){1, 3, 5, 7, 9, 11, 13, 15});
		store8(rows + ow, __builtin_shuffle(odd, (v8f){0} + last, (v8i){8, 0, 1, 2, 3, 4, 5, 6}));
		store8(rows + ld + ow, __builtin_shuffle(a, b, (v8i){0, 2, 4, 6, 8, 10, 12, 14}));
		store8(rows + 2 * ld + ow, odd);
		last = odd[7];
	}
	for (; ow + 4 <= Wo; ow += 4) {
		v4f a = load4(src + 2 * ow), b = load4(src + 2 * ow + 4);
		v4f odd = __builtin_shuffle(a, b, (v4i){1, 3, 5, 7});
		store4(rows + ow, __builtin_shuffle(odd, (v4f){0} + last, (v4i){4, 0, 1, 2}));
		store4(rows + ld + ow, __builtin_shuffle(a, b, (v4i){0, 2, 4, 6}));
		store4(rows + 2 * ld + ow, odd);
		last = odd[3];
	}
	for (; ow < Wo; ow++) {
		rows[ow] = last;
		rows[ld + ow] = src[2 * ow];
		rows[2 * ld + ow] = last = src[2 * ow + 1];
	}
}

// im2col_stride2 is swav_im2col at stride 2: each input row gives every
// output row that reads it (up to k/2+1 kernel rows, k taps each) through
// stride2_taps, instead of a gather per tap with edge cases at both ends.
// With padding, the row is first copied once into a buffer with the
// padding's zeros around it.
static inline __attribute__((always_inline)) void im2col_stride2(float *col, size_t ld, const float *x, swav_conv_geom g, int n0, int n1, int r0, int r1) {
	const int k = g.k, pad = g.pad, Wo = g.Wo, kk = k * k;
	const size_t hw = (size_t)g.Ho * Wo, plane = (size_t)g.H * g.W;
	if (k == 1 && pad == 0) { // one row per channel: the even lanes of the even rows
		for (int c = r0; c < r1; c++)
			for (int n = n0; n < n1; n++) {
				const float *img = x + ((size_t)c * g.N + n) * plane;
				float *out = col + (size_t)c * ld + (size_t)(n - n0) * hw;
				for (int oh = 0; oh < g.Ho; oh++)
					stride2_taps(out + (size_t)oh * Wo, ld, img + (size_t)2 * oh * g.W, g.W - 1, Wo, 0, 1);
			}
		return;
	}
	float b[pad + g.W + 2 * Wo + k + 16];
	memset(b, 0, sizeof b);
	for (int c = r0 / kk; c * kk < r1; c++) {
		// The taps [lo[kh], hi[kh]) of each kernel row within [r0, r1).
		int lo[k], hi[k];
		for (int kh = 0; kh < k; kh++) {
			const int base = c * kk + kh * k;
			lo[kh] = r0 > base ? (r0 - base < k ? r0 - base : k) : 0;
			hi[kh] = r1 < base + k ? (r1 > base ? r1 - base : 0) : k;
		}
		for (int n = n0; n < n1; n++) {
			const float *img = x + ((size_t)c * g.N + n) * plane;
			float *out = col + (size_t)c * kk * ld + (size_t)(n - n0) * hw;
			// Output rows whose kernel row falls outside the image.
			for (int kh = 0; kh < k; kh++)
				for (int oh = 0; oh < g.Ho; oh++) {
					const int i = 2 * oh - pad + kh;
					if (i >= 0 && i < g.H) continue;
					for (int kw = lo[kh]; kw < hi[kh]; kw++)
						memset(out + (size_t)(kh * k + kw) * ld + (size_t)oh * Wo, 0, sizeof(float) * Wo);
				}
			for (int i = 0; i < g.H; i++) {
				int copied = 0;
				// Output row oh reads input row i through kernel row kh
				// = i + pad - 2*oh.
				for (int kh = (i + pad) % 2; kh < k; kh += 2) {
					const int oh = (i + pad - kh) / 2;
					if (oh < 0 || oh >= g.Ho || lo[kh] >= hi[kh]) continue;
					float *rows = out + (size_t)kh * k * ld + (size_t)oh * Wo;
					if (k == 3 && pad == 1 && g.W == 2 * Wo && lo[kh] == 0 && hi[kh] == 3) {
						stride2_k3_pad1(rows, ld, img + (size_t)i * g.W, Wo);
						continue;
					}
					const float *src = b;
					int last = (int)(sizeof b / sizeof b[0]) - 1;
					if (pad == 0) { // every tap within the row: read in place
						src = img + (size_t)i * g.W;
						last = g.W - 1;
					} else if (!copied) {
						copy_floats(b + pad, img + (size_t)i * g.W, g.W);
						copied = 1;
					}
					// The layers' kernels, all taps, with constant bounds
					// so that the tap loop unrolls.
					if (lo[kh] == 0 && hi[kh] == k && k == 3)
						stride2_taps(rows, ld, src, last, Wo, 0, 3);
					else
						stride2_taps(rows, ld, src, last, Wo, lo[kh], hi[kh]);
				}
			}
		}
	}
}

SWAV_CLONES void swav_im2col(float *col, size_t ld, const float *x, swav_conv_geom g, int n0, int n1, int r0, int r1) {
	if (g.stride == 2) {
		im2col_stride2(col, ld, x, g, n0, n1, r0, r1);
		return;
	}
	const int k = g.k, s = g.stride, pad = g.pad, Wo = g.Wo;
	const size_t hw = (size_t)g.Ho * Wo, plane = (size_t)g.H * g.W;
	for (int r = r0; r < r1; r++) {
		const int c = r / (k * k), kh = r / k % k, kw = r % k;
		int wlo, whi, hlo, hhi;
		valid_range(Wo, g.W, s, pad, kw, &wlo, &whi);
		valid_range(g.Ho, g.H, s, pad, kh, &hlo, &hhi);
		for (int n = n0; n < n1; n++) {
			const float *img = x + ((size_t)c * g.N + n) * plane;
			float *out = col + (size_t)r * ld + (size_t)(n - n0) * hw;
			memset(out, 0, sizeof(float) * (size_t)hlo * Wo);
			memset(out + (size_t)hhi * Wo, 0, sizeof(float) * (size_t)(g.Ho - hhi) * Wo);
			for (int oh = hlo; oh < hhi; oh++) {
				const float *src = img + (size_t)(oh * s - pad + kh) * g.W;
				float *row = out + (size_t)oh * Wo;
				for (int ow = 0; ow < wlo; ow++) row[ow] = 0;
				for (int ow = whi; ow < Wo; ow++) row[ow] = 0;
				if (s == 1)
					memcpy(row + wlo, src + wlo - pad + kw, sizeof(float) * (size_t)(whi - wlo));
				else
					for (int ow = wlo; ow < whi; ow++) row[ow] = src[ow * s - pad + kw];
			}
		}
	}
}

// col2im_k3_pad1 is the adjoint of stride2_k3_pad1: it adds the three
// taps t0, t1, t2 of one kernel row onto an input row of even width 2*Wo.
// Even lanes take tap 1; odd lanes take tap 0 of the next output, then
// tap 2: the scalar loop's order of taps, so the sums round alike (the
// zeros added to the other lanes change nothing).
static inline __attribute__((always_inline)) void col2im_k3_pad1(float *dst, const float *t0, const float *t1, const float *t2, int Wo) {
	int ow = 0;
	for (; ow + 8 <= Wo; ow += 8) {
		const v8f z = {0}, a = load8(t1 + ow), c = load8(t2 + ow);
		const v8f b = ow + 8 < Wo ? load8(t0 + ow + 1) : __builtin_shuffle(load8(t0 + ow), z, (v8i){1, 2, 3, 4, 5, 6, 7, 8});
		v8f lo = load8(dst + 2 * ow) + __builtin_shuffle(a, b, (v8i){0, 8, 1, 9, 2, 10, 3, 11});
		v8f hi = load8(dst + 2 * ow + 8) + __builtin_shuffle(a, b, (v8i){4, 12, 5, 13, 6, 14, 7, 15});
		store8(dst + 2 * ow, lo + __builtin_shuffle(z, c, (v8i){0, 8, 0, 9, 0, 10, 0, 11}));
		store8(dst + 2 * ow + 8, hi + __builtin_shuffle(z, c, (v8i){0, 12, 0, 13, 0, 14, 0, 15}));
	}
	for (; ow + 4 <= Wo; ow += 4) {
		const v4f z = {0}, a = load4(t1 + ow), c = load4(t2 + ow);
		const v4f b = ow + 4 < Wo ? load4(t0 + ow + 1) : __builtin_shuffle(load4(t0 + ow), z, (v4i){1, 2, 3, 4});
		v4f lo = load4(dst + 2 * ow) + __builtin_shuffle(a, b, (v4i){0, 4, 1, 5});
		v4f hi = load4(dst + 2 * ow + 4) + __builtin_shuffle(a, b, (v4i){2, 6, 3, 7});
		store4(dst + 2 * ow, lo + __builtin_shuffle(z, c, (v4i){0, 4, 0, 5}));
		store4(dst + 2 * ow + 4, hi + __builtin_shuffle(z, c, (v4i){0, 6, 0, 7}));
	}
	for (; ow < Wo; ow++) {
		dst[2 * ow] += t1[ow];
		if (ow + 1 < Wo) dst[2 * ow + 1] += t0[ow + 1];
		dst[2 * ow + 1] += t2[ow];
	}
}

SWAV_CLONES void swav_col2im(float *dx, const float *col, size_t ld, swav_conv_geom g, int n0, int n1, int c0, int c1) {
	const int k = g.k, s = g.stride, pad = g.pad, Wo = g.Wo;
	const size_t hw = (size_t)g.Ho * Wo, plane = (size_t)g.H * g.W;
	if (s == 2 && k == 1 && pad == 0) { // 1x1: onto the even lanes of the even rows, the odd lanes plus zeros
		for (int c = c0; c < c1; c++)
			for (int n = n0; n < n1; n++) {
				float *img = dx + ((size_t)c * g.N + n) * plane;
				const float *src = col + (size_t)c * ld + (size_t)(n - n0) * hw;
				for (int oh = 0; oh < g.Ho; oh++) {
					float *dst = img + (size_t)2 * oh * g.W;
					const float *row = src + (size_t)oh * Wo;
					int ow = 0;
					for (; ow + 8 <= Wo && 2 * ow + 16 <= g.W; ow += 8) {
						const v8f z = {0}, r = load8(row + ow);
						store8(dst + 2 * ow, load8(dst + 2 * ow) + __builtin_shuffle(r, z, (v8i){0, 8, 1, 8, 2, 8, 3, 8}));
						store8(dst + 2 * ow + 8, load8(dst + 2 * ow + 8) + __builtin_shuffle(r, z, (v8i){4, 8, 5, 8, 6, 8, 7, 8}));
					}
					for (; ow + 4 <= Wo && 2 * ow + 8 <= g.W; ow += 4) {
						const v4f z = {0}, r = load4(row + ow);
						store4(dst + 2 * ow, load4(dst + 2 * ow) + __builtin_shuffle(r, z, (v4i){0, 4, 1, 4}));
						store4(dst + 2 * ow + 4, load4(dst + 2 * ow + 4) + __builtin_shuffle(r, z, (v4i){2, 4, 3, 4}));
					}
					for (; ow < Wo; ow++) dst[2 * ow] += row[ow];
				}
			}
		return;
	}
	if (s == 2 && k == 3 && pad == 1 && g.W == 2 * Wo) { // a kernel row's three taps at once, row by row
		for (int c = c0; c < c1; c++)
			for (int n = n0; n < n1; n++) {
				float *img = dx + ((size_t)c * g.N + n) * plane;
				for (int kh = 0; kh < 3; kh++) {
					const float *src = col + (size_t)(c * 9 + kh * 3) * ld + (size_t)(n - n0) * hw;
					for (int oh = 0; oh < g.Ho; oh++) {
						const int i = 2 * oh - 1 + kh;
						if (i < 0 || i >= g.H) continue;
						const float *r = src + (size_t)oh * Wo;
						col2im_k3_pad1(img + (size_t)i * g.W, r, r + ld, r + 2 * ld, Wo);
					}
				}
			}
		return;
	}
	for (int c = c0; c < c1; c++) {
		for (int t = 0; t < k * k; t++) {
			const int kh = t / k, kw = t % k;
			const float *src = col + ((size_t)c * k * k + t) * ld;
			int wlo, whi, hlo, hhi;
			valid_range(Wo, g.W, s, pad, kw, &wlo, &whi);
			valid_range(g.Ho, g.H, s, pad, kh, &hlo, &hhi);
			for (int n = n0; n < n1; n++) {
				float *img = dx + ((size_t)c * g.N + n) * plane;
				const float *in = src + (size_t)(n - n0) * hw;
				for (int oh = hlo; oh < hhi; oh++) {
					float *dst = img + (size_t)(oh * s - pad + kh) * g.W;
					const float *row = in + (size_t)oh * Wo;
					if (s == 1) {
						for (int ow = wlo; ow < whi; ow++) dst[ow - pad + kw] += row[ow];
					} else {
						for (int ow = wlo; ow < whi; ow++) dst[ow * s - pad + kw] += row[ow];
					}
				}
			}
		}
	}
}
