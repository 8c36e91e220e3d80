// A packed, cache-blocked SGEMM (the BLIS scheme): C = alpha*op(A)*op(B) +
// beta*C, row-major. The micro-kernel is written with GCC vector
// extensions, so one source gives SIMD code on any target; on x86-64 it is
// built three times (AVX-512, AVX2+FMA, baseline SSE2), on arm64 there is a
// NEON kernel beside the generic one, and the processor picks at run time.
// Threads come from Go.
#include <string.h>
#include "sgemm.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>
#include <asm/hwcap.h>
#endif

#define KC SWAV_SGEMM_KC
#define MC 96
#define NC 2048
#define AT(m, ld, trans, r, c) ((trans) ? (m)[(size_t)(c) * (ld) + (r)] : (m)[(size_t)(r) * (ld) + (c)])

typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

#define V v8
#define VL 8
#define MR 6
#define NR 16
#define FN sgemm_generic
#define ATTR
#include "sgemm_impl.h"
#undef V
#undef VL
#undef MR
#undef NR
#undef FN
#undef ATTR

#if defined(__x86_64__)
#define V v8
#define VL 8
#define MR 6
#define NR 16
#define FN sgemm_avx2
#define ATTR __attribute__((target("avx2,fma")))
#include "sgemm_impl.h"
#undef V
#undef VL
#undef MR
#undef NR
#undef FN
#undef ATTR

// 32 vector registers: eight rows (16 accumulators) instead of six, so the
// layers' channel counts (multiples of 8) fill every row of the tile.
#define V v16
#define VL 16
#define MR 8
#define NR 32
#define FN sgemm_avx512
#define ATTR __attribute__((target("avx512f,fma")))
#include "sgemm_impl.h"
#undef V
#undef VL
#undef MR
#undef NR
#undef FN
#undef ATTR
#endif

#if defined(__aarch64__)
// The NEON kernel (Cortex-A78 and the like: 32 128-bit registers, FMA, no
// SVE): a 6x16 tile in 24 accumulators. It loads the six values of A as one
// and a half registers and multiplies by lane (fmla v.4s, v.4s, v.s[i]), so
// no value of A is broadcast into a register of its own: 24 accumulators,
// 4 of B and 2 of A fill 30 of the 32 registers.
static inline __attribute__((always_inline)) void sgemm_neon_kernel(int kc, const float *restrict a, const float *restrict b,
                                                                    float *restrict out, size_t ldo, int acc) {
	float32x4_t c00 = vdupq_n_f32(0), c01 = c00, c02 = c00, c03 = c00;
	float32x4_t c10 = c00, c11 = c00, c12 = c00, c13 = c00;
	float32x4_t c20 = c00, c21 = c00, c22 = c00, c23 = c00;
	float32x4_t c30 = c00, c31 = c00, c32 = c00, c33 = c00;
	float32x4_t c40 = c00, c41 = c00, c42 = c00, c43 = c00;
	float32x4_t c50 = c00, c51 = c00, c52 = c00, c53 = c00;
	for (int k = 0; k < kc; k++) {
		float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
		float32x4_t a03 = vld1q_f32(a);
		float32x2_t a45 = vld1_f32(a + 4);
#define ROWQ(x, l) x##0 = vfmaq_laneq_f32(x##0, b0, a03, l); x##1 = vfmaq_laneq_f32(x##1, b1, a03, l); \
		x##2 = vfmaq_laneq_f32(x##2, b2, a03, l); x##3 = vfmaq_laneq_f32(x##3, b3, a03, l);
#define ROWD(x, l) x##0 = vfmaq_lane_f32(x##0, b0, a45, l); x##1 = vfmaq_lane_f32(x##1, b1, a45, l); \
		x##2 = vfmaq_lane_f32(x##2, b2, a45, l); x##3 = vfmaq_lane_f32(x##3, b3, a45, l);
		ROWQ(c0, 0) ROWQ(c1, 1) ROWQ(c2, 2) ROWQ(c3, 3) ROWD(c4, 0) ROWD(c5, 1)
#undef ROWQ
#undef ROWD
		a += 6;
		b += 16;
	}
#define STORE(x, r) { float *o = out + (size_t)(r) * ldo;                                          \
	if (acc) { x##0 = vaddq_f32(x##0, vld1q_f32(o)); x##1 = vaddq_f32(x##1, vld1q_f32(o + 4));          \
		   x##2 = vaddq_f32(x##2, vld1q_f32(o + 8)); x##3 = vaddq_f32(x##3, vld1q_f32(o + 12)); }   \
	vst1q_f32(o, x##0); vst1q_f32(o + 4, x##1); vst1q_f32(o + 8, x##2); vst1q_f32(o + 12, x##3); }
	STORE(c0, 0) STORE(c1, 1) STORE(c2, 2) STORE(c3, 3) STORE(c4, 4) STORE(c5, 5)
#undef STORE
}

typedef float v4 __attribute__((vector_size(16)));
#define V v4
#define VL 4
#define MR 6
#define NR 16
#define FN sgemm_neon
#define ATTR
#define OWN_KERNEL
#include "sgemm_impl.h"
#undef V
#undef VL
#undef MR
#undef NR
#undef FN
#undef ATTR
#undef OWN_KERNEL
#endif

typedef void sgemm_fn(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, float *work, const float *Bp);
typedef void dot_fn(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc);

// variants lists the kernels built for this architecture, best first.
static const struct {
	const char *name;
	sgemm_fn *fn;
	dot_fn *dot;
	int nr; // the width of its B panels
} variants[] = {
#if defined(__x86_64__)
	{"avx512", sgemm_avx512, sgemm_avx512_dot, 32},
	{"avx2", sgemm_avx2, sgemm_avx2_dot, 16},
#endif
#if defined(__aarch64__)
	{"neon", sgemm_neon, sgemm_neon_dot, 16},
#endif
	{"generic", sgemm_generic, sgemm_generic_dot, 16},
};
#define NVARIANTS (int)(sizeof variants / sizeof variants[0])

static int supported(int i) {
	const char *n = variants[i].name;
#if defined(__x86_64__)
	if (!strcmp(n, "avx512")) return __builtin_cpu_supports("avx512f");
	if (!strcmp(n, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
	// Advanced SIMD is part of every ARMv8-A core, but the kernel says so
	// only when the kernel reports it.
	if (!strcmp(n, "neon")) return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#endif
	return !strcmp(n, "generic");
}

static int current = NVARIANTS - 1; // generic until the constructor runs

__attribute__((constructor)) static void pick_variant(void) {
#if defined(__x86_64__)
	__builtin_cpu_init();
#endif
	for (int i = 0; i < NVARIANTS; i++)
		if (supported(i)) {
			current = i;
			return;
		}
}

const char *swav_sgemm_variant(void) { return variants[current].name; }

static int find(const char *name) {
	for (int i = 0; i < NVARIANTS; i++)
		if (!strcmp(variants[i].name, name) && supported(i)) return i;
	return -1;
}

const char *swav_sgemm_supported_at(int i) {
	for (int v = 0; v < NVARIANTS; v++)
		if (supported(v) && i-- == 0) return variants[v].name;
	return NULL;
}

int swav_sgemm_use(const char *name) {
	int i = find(name);
	if (i < 0) return -1;
	current = i;
	return 0;
}

_Static_assert(MC * KC + KC * (NC + 32) <= SWAV_SGEMM_WORK, "workspace too small");
_Static_assert(MC * KC % 16 == 0, "the B panel must stay 64-byte aligned");

// use_dot says whether A*B^T goes to the unpacked dot-product kernel: for
// small products deep in K, where packing costs about as much as the
// multiply-adds. Since the packing transposes in registers
// (BenchmarkGemmDeep, AVX-512, one core, operands in cache): the dot
// kernel 1.3x at [32 x 32], 2.3x at [32 x 27] (a partial panel), 1.13x at
// [64 x 64]; packed 1.2x at [128 x 64], 1.15x at [128 x 128], and ahead
// from [64 x 288] up. At [64 x 64] as the Winograd filter gradients run
// them (their planes read from L3, both cores busy), packed was ahead
// (64->64 layers 1.0-1.25x), so the dot kernel keeps 32 and under.
static int dot_mode = -1; // -1: by shape; 0: never; 1: always (swav_sgemm_dot_mode)
static int use_dot(int M, int N, int K) {
	if (dot_mode >= 0) return dot_mode;
	const int big = M > N ? M : N;
	return big <= 32 && K >= 8 * big;
}

void swav_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, float *work) {
	if (M <= 0 || N <= 0) return;
	if (K <= 0 || alpha == 0) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
		return;
	}
	if (!ta && tb && use_dot(M, N, K)) {
		variants[current].dot(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	variants[current].fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work, NULL);
}

int swav_sgemm_nr(void) { return variants[current].nr; }

void swav_sgemm_packed_b(int M, int N, int K, const float *A, int lda, const float *Bp, float beta, float *C, int ldc,
                         float *work) {
	if (M <= 0 || N <= 0 || K <= 0 || K > KC) return;
	variants[current].fn(0, 0, M, N, K, 1, A, lda, NULL, 0, beta, C, ldc, work, Bp);
}

void swav_sgemm_dot_mode(int mode) { dot_mode = mode; }
