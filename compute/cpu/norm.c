#include "norm.h"
#include "simd.h"

typedef double v4d __attribute__((vector_size(32)));

#define HSUM(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))

SWAV_CLONES void swav_row_moments(const float *x, long M, double *sum, double *ss) {
	v4d a = {0}, b = {0};
	long i = 0;
	for (; i + 8 <= M; i += 8) {
		a += __builtin_convertvector(load4(x + i), v4d);
		b += __builtin_convertvector(load4(x + i + 4), v4d);
	}
	double s = HSUM(a + b);
	for (; i < M; i++) s += x[i];
	double mu = s / (double)M;
	v4d m = {mu, mu, mu, mu}, c = {0}, d = {0};
	for (i = 0; i + 8 <= M; i += 8) {
		v4d u = __builtin_convertvector(load4(x + i), v4d) - m, w = __builtin_convertvector(load4(x + i + 4), v4d) - m;
		c += u * u;
		d += w * w;
	}
	double q = HSUM(c + d);
	for (; i < M; i++) q += (x[i] - mu) * (x[i] - mu);
	*sum = s;
	*ss = q;
}

SWAV_CLONES void swav_normalize_row(float *dst, const float *src, long M, float mu, float scale, float shift, int relu) {
	if (relu)
		for (long i = 0; i < M; i++) {
			float o = (src[i] - mu) * scale + shift;
			dst[i] = o < 0 ? 0 : o;
		}
	else
		for (long i = 0; i < M; i++) dst[i] = (src[i] - mu) * scale + shift;
}

SWAV_CLONES void swav_bn_backward_row(float *dx, const float *x, const float *dy, const float *y, long M, float mu, float is, float k,
                          double *sg, double *sgx) {
	v4d a = {0}, b = {0};
	const v4f zero = {0}, vmu = {mu, mu, mu, mu}, vis = {is, is, is, is};
	long i = 0;
	for (; i + 4 <= M; i += 4) {
		v4f g = load4(dy + i);
		if (y) g = (v4f)(~(load4(y + i) <= zero) & (v4i)g); // g where !(y <= 0), as the Go loop
		v4f xh = (load4(x + i) - vmu) * vis;
		a += __builtin_convertvector(g, v4d);
		b += __builtin_convertvector(g, v4d) * __builtin_convertvector(xh, v4d);
	}
	double s = HSUM(a), t = HSUM(b);
	for (; i < M; i++) {
		float g = y && y[i] <= 0 ? 0 : dy[i];
		s += g;
		t += (double)g * (double)((x[i] - mu) * is);
	}
	*sg = s;
	*sgx = t;
	const float mg = (float)(s / (double)M), mgx = (float)(t / (double)M);
	if (y)
		for (i = 0; i < M; i++) {
			float g = y[i] <= 0 ? 0 : dy[i];
			dx[i] = k * (g - mg - (x[i] - mu) * is * mgx);
		}
	else
		for (i = 0; i < M; i++) dx[i] = k * (dy[i] - mg - (x[i] - mu) * is * mgx);
}
