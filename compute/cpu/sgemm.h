void swav_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
// swav_sgemm_variant names the kernel this processor runs.
const char *swav_sgemm_variant(void);
