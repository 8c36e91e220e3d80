// A packed, cache-blocked SGEMM (the BLIS scheme): C = alpha*op(A)*op(B) +
// beta*C, row-major. The micro-kernel is written with GCC vector
// extensions, so one source gives SIMD code on any target; on x86-64 it is
// built three times (AVX-512, AVX2+FMA, baseline SSE2) and the processor
// picks at run time. Threads come from Go.
#include <string.h>
#include "sgemm.h"

#define MR 6
#define KC 256
#define MC 96
#define NC 2048
#define AT(m, ld, trans, r, c) ((trans) ? (m)[(size_t)(c) * (ld) + (r)] : (m)[(size_t)(r) * (ld) + (c)])

typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

#define V v8
#define NR 16
#define FN sgemm_generic
#define ATTR
#include "sgemm_impl.h"
#undef V
#undef NR
#undef FN
#undef ATTR

#if defined(__x86_64__)
#define V v8
#define NR 16
#define FN sgemm_avx2
#define ATTR __attribute__((target("avx2,fma")))
#include "sgemm_impl.h"
#undef V
#undef NR
#undef FN
#undef ATTR

#define V v16
#define NR 32
#define FN sgemm_avx512
#define ATTR __attribute__((target("avx512f,fma")))
#include "sgemm_impl.h"
#undef V
#undef NR
#undef FN
#undef ATTR
#endif

const char *swav_sgemm_variant(void) {
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx512f")) return "avx512";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
	return "generic";
}

#if defined(__x86_64__)
static int variant; // 2: AVX-512, 1: AVX2, 0: generic

__attribute__((constructor)) static void pick_variant(void) {
	__builtin_cpu_init();
	const char *v = swav_sgemm_variant();
	variant = v[0] == 'a' ? (v[3] == '5' ? 2 : 1) : 0;
}
#endif

_Static_assert(MC * KC + KC * (NC + 32) <= SWAV_SGEMM_WORK, "workspace too small");
_Static_assert(MC * KC % 16 == 0, "the B panel must stay 64-byte aligned");

void swav_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, float *work) {
	if (M <= 0 || N <= 0) return;
	if (K <= 0 || alpha == 0) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
		return;
	}
#if defined(__x86_64__)
	if (variant == 2) { sgemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work); return; }
	if (variant == 1) { sgemm_avx2(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work); return; }
#endif
	sgemm_generic(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work);
}
