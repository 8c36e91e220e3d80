// Four-float vectors (GCC vector extensions: SSE on x86-64, NEON on arm64)
// and unaligned loads and stores of them, for the C loops of this package.
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
	v4f v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
