// A packed, cache-blocked SGEMM (the BLIS scheme): C = alpha*op(A)*op(B) +
// beta*C, row-major. Written with GCC vector extensions so one source is
// SIMD on any target; on x86-64 it is also cloned for AVX2+FMA and the
// loader picks the clone the processor runs. Threads come from Go.
#include <stdlib.h>
#include <string.h>
#include "sgemm.h"

#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define NC 2048

typedef float v8 __attribute__((vector_size(32)));

#if defined(__x86_64__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

static inline __attribute__((always_inline)) float at(const float *m, int ld, int trans, int r, int c) {
	return trans ? m[(size_t)c * ld + r] : m[(size_t)r * ld + c];
}

// packA stores rows [i0,i0+mc) x cols [k0,k0+kc) of op(A) as MR-row panels, k-major.
static inline __attribute__((always_inline)) void packA(float *dst, const float *A, int lda, int ta, int i0, int mc, int k0, int kc) {
	for (int p = 0; p < mc; p += MR) {
		int rows = mc - p < MR ? mc - p : MR;
		for (int k = 0; k < kc; k++) {
			for (int r = 0; r < rows; r++) dst[r] = at(A, lda, ta, i0 + p + r, k0 + k);
			for (int r = rows; r < MR; r++) dst[r] = 0;
			dst += MR;
		}
	}
}

// packB stores rows [k0,k0+kc) x cols [j0,j0+nc) of op(B) as NR-column panels, k-major.
static inline __attribute__((always_inline)) void packB(float *dst, const float *B, int ldb, int tb, int k0, int kc, int j0, int nc) {
	for (int q = 0; q < nc; q += NR) {
		int cols = nc - q < NR ? nc - q : NR;
		for (int k = 0; k < kc; k++) {
			if (!tb && cols == NR) {
				memcpy(dst, B + (size_t)(k0 + k) * ldb + j0 + q, NR * sizeof(float));
			} else {
				for (int c = 0; c < cols; c++) dst[c] = at(B, ldb, tb, k0 + k, j0 + q + c);
				for (int c = cols; c < NR; c++) dst[c] = 0;
			}
			dst += NR;
		}
	}
}

// kernel multiplies an MR x kc panel by a kc x NR panel into the MR x NR tile t.
static inline __attribute__((always_inline)) void kernel(int kc, const float *restrict a, const float *restrict b, float *restrict t) {
	v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
	v8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
	for (int k = 0; k < kc; k++) {
		v8 b0 = *(const v8 *)b, b1 = *(const v8 *)(b + 8);
#define ROW(i, x0, x1) { v8 av = {a[i], a[i], a[i], a[i], a[i], a[i], a[i], a[i]}; x0 += av * b0; x1 += av * b1; }
		ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21)
		ROW(3, c30, c31) ROW(4, c40, c41) ROW(5, c50, c51)
#undef ROW
		a += MR;
		b += NR;
	}
	v8 *o = (v8 *)t;
	o[0] = c00; o[1] = c01; o[2] = c10; o[3] = c11; o[4] = c20; o[5] = c21;
	o[6] = c30; o[7] = c31; o[8] = c40; o[9] = c41; o[10] = c50; o[11] = c51;
}

CLONES
void swav_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
	if (M <= 0 || N <= 0) return;
	if (K <= 0 || alpha == 0) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
		return;
	}
	float *pa = aligned_alloc(64, sizeof(float) * MC * KC);
	float *pb = aligned_alloc(64, sizeof(float) * KC * (NC + NR));
	float t[MR * NR] __attribute__((aligned(64)));
	for (int j0 = 0; j0 < N; j0 += NC) {
		int nc = N - j0 < NC ? N - j0 : NC;
		for (int k0 = 0; k0 < K; k0 += KC) {
			int kc = K - k0 < KC ? K - k0 : KC;
			float b0 = k0 == 0 ? beta : 1;
			packB(pb, B, ldb, tb, k0, kc, j0, nc);
			for (int i0 = 0; i0 < M; i0 += MC) {
				int mc = M - i0 < MC ? M - i0 : MC;
				packA(pa, A, lda, ta, i0, mc, k0, kc);
				for (int q = 0; q < nc; q += NR) {
					int cols = nc - q < NR ? nc - q : NR;
					for (int p = 0; p < mc; p += MR) {
						int rows = mc - p < MR ? mc - p : MR;
						kernel(kc, pa + (size_t)p * kc, pb + (size_t)q * kc, t);
						for (int r = 0; r < rows; r++) {
							float *c = C + (size_t)(i0 + p + r) * ldc + j0 + q;
							const float *s = t + r * NR;
							if (b0 == 0)
								for (int x = 0; x < cols; x++) c[x] = alpha * s[x];
							else
								for (int x = 0; x < cols; x++) c[x] = alpha * s[x] + b0 * c[x];
						}
					}
				}
			}
		}
	}
	free(pa);
	free(pb);
}
