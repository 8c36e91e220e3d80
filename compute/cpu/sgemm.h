// work holds SWAV_SGEMM_WORK floats, 64-byte aligned, for the packed
// panels: the caller owns the memory (Go's allocator, so it counts towards
// the heap limit and cannot come back NULL).
#define SWAV_SGEMM_WORK (96 * 256 + 256 * (2048 + 32))
void swav_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, float *work);
// swav_sgemm_variant names the kernel this processor runs.
const char *swav_sgemm_variant(void);
