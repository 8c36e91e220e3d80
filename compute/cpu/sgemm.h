// work holds SWAV_SGEMM_WORK floats, 64-byte aligned, for the packed
// panels: the caller owns the memory (Go's allocator, so it counts towards
// the heap limit and cannot come back NULL).
#define SWAV_SGEMM_WORK (96 * 256 + 256 * (2048 + 32))
// SWAV_SGEMM_KC is the depth of the blocks of K the products are taken in.
#define SWAV_SGEMM_KC 256
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
// swav_sgemm_nr is the width of the B panels of the variant in use, the
// layout swav_sgemm_packed_b reads.
int swav_sgemm_nr(void);
// swav_sgemm_packed_b is swav_sgemm(0, 0, M, N, K, 1, A, lda, B, ...) with
// B [K x N] given already packed as the variant packs it: panels of nr =
// swav_sgemm_nr() columns, panel p holding B's rows 0..K-1 of columns
// [p*nr, p*nr+nr), each row nr floats, so B[k][j] is at
// Bp[(j/nr)*K*nr + k*nr + j%nr] (the last panel's columns past N are
// read, and their results dropped). A producer that writes B this way
// (the Winograd input transform) saves the packing pass. K is at most
// SWAV_SGEMM_KC; beyond, nothing is done.
void swav_sgemm_packed_b(int M, int N, int K, const float *A, int lda, const float *Bp, float beta, float *C, int ldc,
                         float *work);
