// The body of one SGEMM variant, included by sgemm.c once per vector
// width. The includer defines V (the vector type, NR/2 floats), NR, FN (the
// function name) and ATTR (target attributes), and may define OWN_KERNEL
// with its own FN##_kernel.
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define PACKA CAT(FN, _packA)
#define PACKB CAT(FN, _packB)
#define KERNEL CAT(FN, _kernel)
#define DOT CAT(FN, _dot)
#define LOADV CAT(FN, _loadv)
#define SUMS CAT(FN, _sums)
#define INLINE static inline __attribute__((always_inline)) ATTR

// Lane shuffles with constant masks; VL (lanes per vector) is the
// includer's.
typedef int CAT(FN, _vi) __attribute__((vector_size(sizeof(V))));
#define VI CAT(FN, _vi)
#if VL == 16
#define LANES(F, s) {F(0, s), F(1, s), F(2, s), F(3, s), F(4, s), F(5, s), F(6, s), F(7, s), \
		     F(8, s), F(9, s), F(10, s), F(11, s), F(12, s), F(13, s), F(14, s), F(15, s)}
#elif VL == 8
#define LANES(F, s) {F(0, s), F(1, s), F(2, s), F(3, s), F(4, s), F(5, s), F(6, s), F(7, s)}
#else
#define LANES(F, s) {F(0, s), F(1, s), F(2, s), F(3, s)}
#endif
// In each group of 2s lanes, the first s take x's lanes l and l+s, the
// next s y's.
#define FOLD_X(i, s) ((i) % (2 * (s)) < (s) ? (i) : VL + (i) - (s))
#define FOLD_Y(i, s) ((i) % (2 * (s)) < (s) ? (i) + (s) : VL + (i))
// SWAP(x, y, s) is one stage of a butterfly transpose: in each group of
// 2s lanes, x keeps its first s and takes y's first s; y keeps its last s
// and takes x's last s. Over the stages s = 1, 2, 4 ... of a square of VL
// vectors (rows i and i+s paired) every element (r, c) goes to (c, r).
#define SWAP(x, y, s) { V x_ = (x), y_ = (y);                         \
		(x) = __builtin_shuffle(x_, y_, (VI)LANES(FOLD_X, s)); \
		(y) = __builtin_shuffle(x_, y_, (VI)LANES(FOLD_Y, s)); }
#define STAGE(v, n, s) _Pragma("GCC unroll 16") for (int i_ = 0; i_ < (n); i_++) if (!(i_ & (s))) SWAP((v)[i_], (v)[i_ + (s)], s)
// STAGES(v, n) runs the stages s < n on n vectors (n a power of two up to
// VL), the masks constant.
#if VL == 16
#define STAGES(v, n) { STAGE(v, n, 1) STAGE(v, n, 2) if ((n) > 4) STAGE(v, n, 4) if ((n) > 8) STAGE(v, n, 8) }
#elif VL == 8
#define STAGES(v, n) { STAGE(v, n, 1) STAGE(v, n, 2) if ((n) > 4) STAGE(v, n, 4) }
#else
#define STAGES(v, n) { STAGE(v, n, 1) STAGE(v, n, 2) }
#endif

// LOADV loads one vector from an address of any alignment.
INLINE V LOADV(const float *p) {
	V v;
	memcpy(&v, p, sizeof v);
	return v;
}

// PACKA stores rows [i0,i0+mc) x cols [k0,k0+kc) of op(A) as MR-row panels, k-major.
INLINE void PACKA(float *dst, const float *A, int lda, int ta, int i0, int mc, int k0, int kc) {
	for (int p = 0; p < mc; p += MR) {
		int rows = mc - p < MR ? mc - p : MR, k = 0;
#if 2 * MR == VL
		// A row-major (the filter gradients' [Co x pixels]): MR rows of VL
		// values go through the first stages of a transpose (the row bits
		// only); vector r then holds column r of the block in its first
		// half and column r + MR in its second, the panel's rows r and
		// r + MR. Read one value at a time, the MR rows were MR strided
		// streams and a scalar store per value.
		if (!ta && rows == MR) {
			const float *src = A + (size_t)(i0 + p) * lda + k0;
			for (; k + VL <= kc; k += VL) {
				V v[MR];
				for (int r = 0; r < MR; r++) v[r] = LOADV(src + (size_t)r * lda + k);
				STAGES(v, MR)
				for (int r = 0; r < MR; r++) {
					memcpy(dst + (size_t)r * MR, &v[r], MR * sizeof(float));
					memcpy(dst + (size_t)(r + MR) * MR, (float *)&v[r] + MR, MR * sizeof(float));
				}
				dst += VL * MR;
			}
		}
#endif
		for (; k < kc; k++) {
			for (int r = 0; r < rows; r++) dst[r] = AT(A, lda, ta, i0 + p + r, k0 + k);
			for (int r = rows; r < MR; r++) dst[r] = 0;
			dst += MR;
		}
	}
}

// PACKB stores rows [k0,k0+kc) x cols [j0,j0+nc) of op(B) as NR-column panels, k-major.
INLINE void PACKB(float *dst, const float *B, int ldb, int tb, int k0, int kc, int j0, int nc) {
	for (int q = 0; q < nc; q += NR) {
		int cols = nc - q < NR ? nc - q : NR;
		if (tb && cols == NR) {
			// op(B) = B^T: the panel's columns are rows of B. VL rows by
			// VL values at a time, transposed in registers, give VL whole
			// vectors of the panel (one value at a time, the stores went
			// NR floats apart and took half the time of deep products).
			for (int h = 0; h < NR; h += VL) {
				const float *src = B + (size_t)(j0 + q + h) * ldb + k0;
				int k = 0;
				for (; k + VL <= kc; k += VL) {
					V v[VL];
					for (int r = 0; r < VL; r++) v[r] = LOADV(src + (size_t)r * ldb + k);
					STAGES(v, VL)
					for (int r = 0; r < VL; r++) memcpy(dst + (size_t)(k + r) * NR + h, &v[r], sizeof v[r]);
				}
				for (; k < kc; k++)
					for (int r = 0; r < VL; r++) dst[(size_t)k * NR + h + r] = src[(size_t)r * ldb + k];
			}
			dst += (size_t)kc * NR;
			continue;
		}
		if (tb) {
			// A last, partial panel: each of its columns is a row of B,
			// read in order.
			for (int c = 0; c < cols; c++) {
				const float *src = B + (size_t)(j0 + q + c) * ldb + k0;
				for (int k = 0; k < kc; k++) dst[(size_t)k * NR + c] = src[k];
			}
			for (int k = 0; k < kc; k++)
				for (int c = cols; c < NR; c++) dst[(size_t)k * NR + c] = 0;
			dst += (size_t)kc * NR;
			continue;
		}
		for (int k = 0; k < kc; k++) {
			if (cols == NR) {
				memcpy(dst, B + (size_t)(k0 + k) * ldb + j0 + q, NR * sizeof(float));
			} else {
				for (int c = 0; c < cols; c++) dst[c] = B[(size_t)(k0 + k) * ldb + j0 + q + c];
				for (int c = cols; c < NR; c++) dst[c] = 0;
			}
			dst += NR;
		}
	}
}

// KERNEL multiplies an MR x kc panel by a kc x NR panel into the MR x NR
// tile at out, its rows ldo floats apart: stored, or added to what is there
// when acc is set. Full tiles go straight into C this way, not through a
// scratch tile and a second pass. MR is 6 or 8 (12 or 16 accumulators). An
// includer with a hand-written kernel defines OWN_KERNEL.
#ifndef OWN_KERNEL
#if MR != 6 && MR != 8
#error "the generic kernel has 6 or 8 rows"
#endif
INLINE void KERNEL(int kc, const float *restrict a, const float *restrict b, float *restrict out, size_t ldo, int acc) {
	V c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
	V c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
#if MR == 8
	V c60 = {0}, c61 = {0}, c70 = {0}, c71 = {0};
#endif
	for (int k = 0; k < kc; k++) {
		V b0 = *(const V *)b, b1 = *(const V *)(b + NR / 2);
#define ROW(i, x0, x1) { V av = a[i] - (V){0}; x0 += av * b0; x1 += av * b1; }
		ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21)
		ROW(3, c30, c31) ROW(4, c40, c41) ROW(5, c50, c51)
#if MR == 8
		ROW(6, c60, c61) ROW(7, c70, c71)
#endif
#undef ROW
		a += MR;
		b += NR;
	}
#define OUT(i, x0, x1) { float *o = out + (size_t)(i) * ldo;                    \
		if (acc) { x0 += LOADV(o); x1 += LOADV(o + NR / 2); }           \
		memcpy(o, &x0, sizeof x0); memcpy(o + NR / 2, &x1, sizeof x1); }
	OUT(0, c00, c01) OUT(1, c10, c11) OUT(2, c20, c21)
	OUT(3, c30, c31) OUT(4, c40, c41) OUT(5, c50, c51)
#if MR == 8
	OUT(6, c60, c61) OUT(7, c70, c71)
#endif
#undef OUT
}
#endif

// SUMS adds up the lanes of each of 16 accumulators at once: a tree of
// vector adds of two lane shuffles halves the vectors at each level (15
// adds of 16-lane vectors down to one), where 16 horizontal sums would take
// 4 shuffle-adds each and a scalar move. out[l] ends up the sum of
// accumulator order[l] (see DOT), the same for every call.
#define FOLD(x, y, s) (__builtin_shuffle(x, y, (VI)LANES(FOLD_X, s)) + __builtin_shuffle(x, y, (VI)LANES(FOLD_Y, s)))
INLINE void SUMS(const V *acc, float *out) {
	V h[8], q[4];
	for (int i = 0; i < 8; i++) h[i] = FOLD(acc[2 * i], acc[2 * i + 1], VL / 2);
	for (int i = 0; i < 4; i++) q[i] = FOLD(h[2 * i], h[2 * i + 1], VL / 4);
#if VL == 4
	memcpy(out, q, sizeof q);
#else
	V e[2];
	for (int i = 0; i < 2; i++) e[i] = FOLD(q[2 * i], q[2 * i + 1], VL / 8);
#if VL == 8
	memcpy(out, e, sizeof e);
#else
	V o = FOLD(e[0], e[1], VL / 16);
	memcpy(out, &o, sizeof o);
#endif
#endif
}
#undef FOLD

// DOT computes C = alpha*A*B^T + beta*C with A [M x K] and B [N x K] read
// in place, row by row: each DI x DJ block of C keeps DI*DJ vector
// accumulators over a stretch of K, and the rows stream through the loads.
// For small, deep products (filter gradients: [Co x C] over thousands of
// pixels), packing both operands costs as much as the multiply-adds, and
// here nothing is packed. K is taken DK at a time so that the stretch of B
// stays in L2 while the block moves along j; each stretch ends in one tree
// of lane sums for the block's 16 accumulators (SUMS: 1.6x the speed of 16
// horizontal sums at [32 x 32] over 8,192, 3-6x on shallower products).
// DK: 4,096 measured best of 256 to 8,192 (1,024 to 8,192 within the noise
// since SUMS).
// Rows past the edge repeat the last row, so the inner loop has no
// branches; their sums are dropped.
#define DI 4
#define DJ 4
#define DK 4096
ATTR static void DOT(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
	enum { L = sizeof(V) / sizeof(float) };
	_Static_assert(DI * DJ == 16 && L == VL, "SUMS takes 16 accumulators of VL lanes");
	// Which accumulator each of SUMS's sums is: SUMS of vectors of their
	// own index, every lane alike, sums it once per level of its tree.
	int order[16];
	{
		V label[16];
		float sums[16];
		for (int x = 0; x < 16; x++) label[x] = (V){0} + (float)x;
		SUMS(label, sums);
		for (int l = 0; l < 16; l++) order[l] = (int)(sums[l] / VL + 0.5f);
	}
	for (int k0 = 0; k0 < K; k0 += DK) {
		const int kn = K - k0 < DK ? K - k0 : DK, kv = kn - kn % L;
		const float b0 = k0 == 0 ? beta : 1;
		for (int i = 0; i < M; i += DI)
			for (int j = 0; j < N; j += DJ) {
				const float *a[DI], *b[DJ];
				for (int r = 0; r < DI; r++) a[r] = A + (size_t)(i + r < M ? i + r : M - 1) * lda + k0;
				for (int c = 0; c < DJ; c++) b[c] = B + (size_t)(j + c < N ? j + c : N - 1) * ldb + k0;
				V acc[DI][DJ];
				for (int r = 0; r < DI; r++)
					for (int c = 0; c < DJ; c++) acc[r][c] = (V){0};
				for (int k = 0; k < kv; k += L) {
					V av[DI];
					for (int r = 0; r < DI; r++) av[r] = LOADV(a[r] + k);
					for (int c = 0; c < DJ; c++) {
						const V bv = LOADV(b[c] + k);
						for (int r = 0; r < DI; r++) acc[r][c] += av[r] * bv;
					}
				}
				float sums[16];
				SUMS(&acc[0][0], sums);
				for (int l = 0; l < 16; l++) {
					const int r = order[l] / DJ, c = order[l] % DJ;
					if (i + r >= M || j + c >= N) continue;
					float s = sums[l];
					for (int k = kv; k < kn; k++) s += a[r][k] * b[c][k];
					float *o = C + (size_t)(i + r) * ldc + j + c;
					*o = alpha * s + (b0 == 0 ? 0 : b0 * *o);
				}
			}
	}
}
#undef DI
#undef DJ
#undef DK

// FN computes C = alpha*op(A)*op(B) + beta*C. Where Bp is not NULL, B is
// given already packed there (see swav_sgemm_packed_b; K at most KC, so
// one block of K) and B, ldb and tb are unused.
ATTR static void FN(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, float *work, const float *Bp) {
	float *pa = work;
	float t[MR * NR] __attribute__((aligned(64)));
	for (int j0 = 0; j0 < N; j0 += NC) {
		int nc = N - j0 < NC ? N - j0 : NC;
		// K in near-equal blocks of at most KC, each a multiple of 16
		// (the packing's vector loops): 288 as 144+144, not 256+32, whose
		// short block costs a pass over C for little work.
		const int kblocks = (K + KC - 1) / KC, kstep = ((K + kblocks - 1) / kblocks + 15) / 16 * 16;
		for (int k0 = 0; k0 < K; k0 += kstep) {
			int kc = K - k0 < kstep ? K - k0 : kstep;
			float b0 = k0 == 0 ? beta : 1;
			const float *pb = Bp ? Bp + (size_t)j0 * K : work + MC * KC;
			if (!Bp) PACKB(work + MC * KC, B, ldb, tb, k0, kc, j0, nc);
			for (int i0 = 0; i0 < M; i0 += MC) {
				int mc = M - i0 < MC ? M - i0 : MC;
				PACKA(pa, A, lda, ta, i0, mc, k0, kc);
				for (int q = 0; q < nc; q += NR) {
					int cols = nc - q < NR ? nc - q : NR;
					for (int p = 0; p < mc; p += MR) {
						int rows = mc - p < MR ? mc - p : MR;
						const float *ap = pa + (size_t)p * kc, *bp = pb + (size_t)q * kc;
						if (rows == MR && cols == NR && alpha == 1 && (b0 == 0 || b0 == 1)) {
							KERNEL(kc, ap, bp, C + (size_t)(i0 + p) * ldc + j0 + q, ldc, b0 != 0);
							continue;
						}
						KERNEL(kc, ap, bp, t, NR, 0);
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
}

#undef PACKA
#undef PACKB
#undef KERNEL
#undef DOT
#undef LOADV
#undef SUMS
#undef INLINE
#undef VI
#undef LANES
#undef FOLD_X
#undef FOLD_Y
#undef SWAP
#undef STAGE
#undef STAGES
