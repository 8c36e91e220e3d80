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

// stride2_row sets row[ow] = src[2*ow] for ow in [lo, hi), src readable up
// to src[last]: eight, then four, at a time from the even lanes of two
// loads where both loads stay within the row, one by one after.
static inline __attribute__((always_inline)) void stride2_row(float *row, const float *src, int lo, int hi, int last) {
	int ow = lo;
	for (; ow + 8 <= hi && 2 * ow + 15 <= last; ow += 8)
		store8(row + ow, __builtin_shuffle(load8(src + 2 * ow), load8(src + 2 * ow + 8), (v8i){0, 2, 4, 6, 8, 10, 12, 14}));
	for (; ow + 4 <= hi && 2 * ow + 7 <= last; ow += 4)
		store4(row + ow, __builtin_shuffle(load4(src + 2 * ow), load4(src + 2 * ow + 4), (v4i){0, 2, 4, 6}));
	for (; ow < hi; ow++) row[ow] = src[2 * ow];
}

SWAV_CLONES void swav_im2col(float *col, size_t ld, const float *x, swav_conv_geom g, int n0, int n1, int r0, int r1) {
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
				else if (s == 2)
					stride2_row(row, src - pad + kw, wlo, whi, g.W - 1 + pad - kw);
				else
					for (int ow = wlo; ow < whi; ow++) row[ow] = src[ow * s - pad + kw];
			}
		}
	}
}

SWAV_CLONES void swav_col2im(float *dx, const float *col, size_t ld, swav_conv_geom g, int n0, int n1, int c0, int c1) {
	const int k = g.k, s = g.stride, pad = g.pad, Wo = g.Wo;
	const size_t hw = (size_t)g.Ho * Wo, plane = (size_t)g.H * g.W;
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
