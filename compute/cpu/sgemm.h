// work holds SWAV_SGEMM_WORK floats, 64-byte aligned, for the packed
// panels: the caller owns the memory (Go's allocator, so it counts towards
// the heap limit and cannot come back NULL).
#define SWAV_SGEMM_WORK (96 * 256 + 256 * (2048 + 32))
void swav_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, float *work);
// swav_sgemm_variant names the kernel in use: the best this processor
// supports unless swav_sgemm_use chose another.
const char *swav_sgemm_variant(void);
// swav_sgemm_supported_at names the i-th variant this processor runs, best
// first ("avx512", "avx2", "neon", "generic"), or returns NULL past the last.
const char *swav_sgemm_supported_at(int i);
// swav_sgemm_use switches to a supported variant (for tests that compare
// them) and returns 0, or returns -1 and changes nothing. Not thread-safe:
// call it while no product runs.
int swav_sgemm_use(const char *name);
// swav_sgemm_dot_mode chooses when A*B^T runs on the unpacked dot-product
// kernel: -1 by the product's shape (the default), 0 never, 1 always (for
// tests and benchmarks). Not thread-safe, like swav_sgemm_use.
void swav_sgemm_dot_mode(int mode);
