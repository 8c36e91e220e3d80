// Four-, eight- and sixteen-float vectors (GCC vector extensions: SSE on
// x86-64, NEON on arm64; the eight-float ones one AVX register in the
// clones below, the sixteen-float ones one AVX-512 register, split
// elsewhere) and unaligned loads and stores of them, for the C loops of
// this package.
#include <string.h>

// SWAV_CLONES builds a function for AVX-512 and for AVX2 besides the
// baseline, and the loader picks the best this processor runs (GCC's
// target_clones, resolved once through an ifunc). The baseline x86-64
// build runs every loop on SSE2; in the clones the compiler's own vector
// loops take the wider registers, and so do the explicit vectors below
// (batch norm's eight-double sums are one AVX-512 register each). Static
// helpers they call are inlined into each clone.
#if defined(__x86_64__)
#define SWAV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SWAV_CLONES
#endif

// SWAV_VECTORS(n) defines vnf and vni, vectors of n floats and ints, and
// loadn and storen, their unaligned load and store.
#define SWAV_VECTORS(n)                                                   \
	typedef float v##n##f __attribute__((vector_size(4 * (n))));     \
	typedef int v##n##i __attribute__((vector_size(4 * (n))));       \
	static inline v##n##f load##n(const float *p) {                  \
		v##n##f v;                                                \
		memcpy(&v, p, sizeof v);                                  \
		return v;                                                 \
	}                                                                 \
	static inline void store##n(float *p, v##n##f v) { memcpy(p, &v, sizeof v); }

SWAV_VECTORS(4)
SWAV_VECTORS(8)
SWAV_VECTORS(16)

// copy_floats copies n floats: short rows, inline rather than a call to
// memcpy (a libc call per row of 16-32 pixels cost as much as the copy).
static inline __attribute__((always_inline)) void copy_floats(float *dst, const float *src, int n) {
	int j = 0;
	for (; j + 8 <= n; j += 8) store8(dst + j, load8(src + j));
	for (; j < n; j++) dst[j] = src[j];
}
