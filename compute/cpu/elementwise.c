#include "elementwise.h"
#include "simd.h"

// No restrict: y may be a or c (the compiler checks overlap at run time).
SWAV_CLONES void swav_add_relu(float *y, const float *a, const float *c, long n) {
	for (long i = 0; i < n; i++) {
		const float v = a[i] + c[i];
		y[i] = v < 0 ? 0 : v;
	}
}

SWAV_CLONES void swav_relu_backward(float *dx, const float *dy, const float *y, long n) {
	for (long i = 0; i < n; i++) {
		const float g = dy[i];
		dx[i] = y[i] > 0 ? g : 0;
	}
}

SWAV_CLONES void swav_axpy(float *y, float alpha, const float *x, long n) {
	for (long i = 0; i < n; i++) y[i] += alpha * x[i];
}
