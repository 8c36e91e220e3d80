#include "norm.h"
#include "norm_row.h"
#include "simd.h"

typedef double v8d __attribute__((vector_size(64)));

// The sums run eight floats at a time in four independent chains of
// eight doubles (in the AVX-512 clone one register each): one chain of
// four doubles waited on its add's latency every four values.
#define CHAINS 4
#define STEP (8 * CHAINS)
#define WIDEN(v) __builtin_convertvector((v), v8d)

static inline double hsum8(const v8d *acc) {
	v8d t = (acc[0] + acc[1]) + (acc[2] + acc[3]);
	return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

SWAV_CLONES void swav_row_moments(const float *x, long M, double *sum, double *ss) {
	v8d a[CHAINS] = {{0}};
	long i = 0;
	for (; i + STEP <= M; i += STEP)
		for (int c = 0; c < CHAINS; c++) a[c] += WIDEN(load8(x + i + 8 * c));
	double s = hsum8(a);
	for (; i < M; i++) s += x[i];
	double mu = s / (double)M;
	v8d m = {0}, q[CHAINS] = {{0}};
	m += mu;
	for (i = 0; i + STEP <= M; i += STEP)
		for (int c = 0; c < CHAINS; c++) {
			v8d u = WIDEN(load8(x + i + 8 * c)) - m;
			q[c] += u * u;
		}
	double t = hsum8(q);
	for (; i < M; i++) t += (x[i] - mu) * (x[i] - mu);
	*sum = s;
	*ss = t;
}

SWAV_CLONES void swav_normalize_row(float *dst, const float *src, const float *res, long M, float mu, float scale, float shift, int relu) {
	normalize_row(dst, src, res, M, mu, scale, shift, relu);
}

SWAV_CLONES void swav_bn_backward_row(float *dx, const float *x, const float *dy, const float *y, long M, float mu, float is, float k,
                          double *sg, double *sgx) {
	v8d a[CHAINS] = {{0}}, b[CHAINS] = {{0}};
	const v8f zero = {0};
	v8f vmu = zero + mu, vis = zero + is;
	long i = 0;
	for (; i + STEP <= M; i += STEP)
		for (int c = 0; c < CHAINS; c++) {
			v8f g = load8(dy + i + 8 * c);
			if (y) g = (v8f)(~(load8(y + i + 8 * c) <= zero) & (v8i)g); // g where !(y <= 0), as the Go loop
			v8f xh = (load8(x + i + 8 * c) - vmu) * vis;
			a[c] += WIDEN(g);
			b[c] += WIDEN(g) * WIDEN(xh);
		}
	double s = hsum8(a), t = hsum8(b);
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
