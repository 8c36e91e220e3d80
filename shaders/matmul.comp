// Tiled matrix products in shared memory: C[M,N] = alpha*A*B + beta*C.
// A workgroup of 16x8 invocations (128: within GL ES 3.1's minimum) owns a
// BM x BN tile of C and keeps a (BM/8) x (BN/16) block of it in registers
// per invocation, so each value loaded into shared memory feeds many
// multiply-adds and a barrier pair covers BM*BN*16 of them. BM x BN is
// 64x128, or 32x128 for products with few rows (the backend chooses).
// Workgroups along z split K into slices of kChunk (for products with few
// output tiles and a long K, such as filter gradients); each slice writes
// its own partial product splitStride elements apart, summed by the
// elementwise SUM_SPLITS pass. The convolutions are the same product with A
// and B gathered straight from the tensors (implicit GEMM, no lowered copy
// in memory):
//   MODE_GEMM         A, B plain matrices, optionally transposed
//   MODE_CONV_FWD     y[Co, N*Ho*Wo] = w[Co, C*k*k] * im2col(x)
//   MODE_CONV_DW      dw[Co, C*k*k]  = dy[Co, N*Ho*Wo] * im2col(x)^T
//   MODE_CONV_DX      dx[C, N*H*W]   = w^T[C, Co*k*k] * col(dy) (the transposed convolution),
//                     one dispatch per stride phase (below)
#define BK 16
#define TM (BM / 8)
#define TN (BN / 16)
#define TV (TN / 4) // vec4s of accumulators per row
#define THREADS 128
uniform int M;
uniform int N;
uniform int K;
uniform float alpha;
uniform float beta;
uniform int lda;
uniform int ldb;
uniform int ldc;
uniform int transA;
uniform int transB;
uniform int kChunk;
uniform int splitStride;
// Convolution geometry: input C x H x W, output Co x Ho x Wo, batch NB,
// kernel KS, stride S, padding P.
uniform int C;
uniform int H;
uniform int W;
uniform int Co;
uniform int Ho;
uniform int Wo;
uniform int NB;
uniform int KS;
uniform int S;
uniform int P;
// MODE_CONV_DX works on one stride phase at a time: the input pixels (ih,
// iw) with (ih+P, iw+P) = (ry, rx) mod S, which only taps kh = ry + S*ty,
// kw = rx + S*tx (ny x nx of them) reach, so no tap is multiplied by a
// zero. Those pixels are ih = ih0 + S*a (a < Ha), iw = iw0 + S*b (b < Wa),
// and output row oh = oy0 + a - ty, column ow = ox0 + b - tx.
uniform int ry;
uniform int rx;
uniform int ny;
uniform int nx;
uniform int ih0;
uniform int iw0;
uniform int Ha;
uniform int Wa;
uniform int oy0;
uniform int ox0;

layout(std430, binding = 0) buffer B0 { float c[]; };
layout(std430, binding = 1) readonly buffer B1 { float a[]; };
layout(std430, binding = 2) readonly buffer B2 { float b[]; };

// k-major: the inner loop reads a row of each.
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1]; // padded: MODE_CONV_DW stores down its columns

#if !defined(MODE_GEMM)
// The gathers' index arithmetic (integer divisions, slow on GPUs and worse
// on llvmpipe) is done once, not per element. B is loaded so that
// neighbouring invocations read neighbouring addresses: along its columns
// j (pixels) for the forward product and the input gradient, down its rows
// k (pixels) for the filter gradient. In the first case every B load of an
// invocation is in the same column (128 is a multiple of BN), whose part is
// computed once (jPart), and the part of each k is computed once per tile
// by 16 invocations into kTab, double-buffered so that filling the next
// tile's entries needs no barrier of its own. In the second, every load of
// an invocation is in the same row k of a tile (its part computed once per
// tile), and the workgroup's BN columns are split once into colTab.
#if defined(MODE_CONV_DW)
shared ivec4 colTab[BN];
#else
shared ivec4 kTab[2][BK];
#endif

// pixel splits q = (image, output pixel) into the image's offset in a
// channel plane of x and the top-left input pixel its window reads.
ivec4 pixel(int q) {
	int hw = Ho * Wo;
	int img = q / hw, p = q - img * hw;
	int oh = p / Wo;
	return ivec4(img * H * W, oh * S - P, (p - oh * Wo) * S - P, 0);
}

// tap splits r = (channel, kh, kw) into the channel's offset in x and the
// tap; w is r's place in a filter of ch channels per output channel.
ivec4 tap(int r, int planeSize, int ch) {
	int kk = KS * KS;
	int c0 = r / kk, t = r - c0 * kk;
	int kh = t / KS;
	return ivec4(c0 * planeSize, kh, t - kh * KS, c0 * ch * kk + t);
}

#if defined(MODE_CONV_FWD)
// B[k, j] = im2col(x)[k = (channel, tap), j = (image, output pixel)]
ivec4 kPart(int k) { return tap(k, NB * H * W, 0); }
ivec4 columnPart(int j) { return pixel(j); }
#elif defined(MODE_CONV_DW)
// B[k, j] = im2col(x)[j = (channel, tap), k = (image, output pixel)]
ivec4 kPart(int k) { return pixel(k); }
ivec4 columnPart(int j) { return tap(j, NB * H * W, 0); }
#else // MODE_CONV_DX: k = (output channel, ty, tx), j = (image, a, b) of the phase
ivec4 kPart(int k) {
	int nt = ny * nx;
	int co = k / nt, t = k - co * nt;
	int ty = t / nx, tx = t - ty * nx;
	return ivec4(co * NB * Ho * Wo, ty, tx, (co * C * KS + ry + S * ty) * KS + rx + S * tx);
}
// phasePixel splits column j of the phase into (image, a, b).
ivec3 phasePixel(int j) {
	int hw = Ha * Wa;
	int img = j / hw, p = j - img * hw;
	int a = p / Wa;
	return ivec3(img, a, p - a * Wa);
}
ivec4 columnPart(int j) {
	ivec3 q = phasePixel(j);
	return ivec4(q.x * Ho * Wo, oy0 + q.y, ox0 + q.z, 0);
}
// outColumn is where column j of the phase lies in a channel of dx.
int outColumn(int j) {
	ivec3 q = phasePixel(j);
	return (q.x * H + ih0 + S * q.y) * W + iw0 + S * q.z;
}
#endif
#endif

float loadA(int i, int k, ivec4 kp) {
	if (i >= M || k >= K) return 0.0;
#if defined(MODE_GEMM)
	return transA != 0 ? a[o1 + k * lda + i] : a[o1 + i * lda + k];
#elif defined(MODE_CONV_FWD) || defined(MODE_CONV_DW)
	return a[o1 + i * K + k];
#else // MODE_CONV_DX: A(ch, (co, ty, tx)) = w[co, ch, ry + S*ty, rx + S*tx]
	return a[o1 + kp.w + i * KS * KS];
#endif
}

float loadB(int k, int j, ivec4 kp, ivec4 jPart) {
	if (k >= K || j >= N) return 0.0;
#if defined(MODE_GEMM)
	return transB != 0 ? b[o2 + j * ldb + k] : b[o2 + k * ldb + j];
#elif defined(MODE_CONV_FWD) || defined(MODE_CONV_DW)
	// x[channel, image, ih, iw]; one of kp, jPart holds the window's corner, the other the tap
	int ih = kp.y + jPart.y, iw = kp.z + jPart.z;
	if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.0;
	return b[o2 + kp.x + jPart.x + ih * W + iw];
#else // MODE_CONV_DX: dy[co, img, oh, ow], the output whose tap (ty, tx) reads input pixel j
	int y = jPart.y - kp.y, x = jPart.z - kp.z;
	if (y < 0 || x < 0 || y >= Ho || x >= Wo) return 0.0;
	return b[o2 + kp.x + jPart.x + y * Wo + x];
#endif
}

void main() {
	int tx = int(gl_LocalInvocationID.x), ty = int(gl_LocalInvocationID.y);
	int tid = ty * 16 + tx;
	int row0 = int(gl_WorkGroupID.y) * BM, col0 = int(gl_WorkGroupID.x) * BN;
	int kBegin = int(gl_WorkGroupID.z) * kChunk, kEnd = min(K, kBegin + kChunk);
	ivec4 kp = ivec4(0), jp = ivec4(0);
#if defined(MODE_CONV_DW)
	for (int n = tid; n < BN; n += THREADS) colTab[n] = columnPart(col0 + n);
	SYNC_SHARED;
#elif !defined(MODE_GEMM)
	jp = columnPart(col0 + tid % BN);
	if (tid < BK) kTab[0][tid] = kPart(kBegin + tid);
	SYNC_SHARED;
#endif
	// This invocation's outputs: rows row0 + ty + 8i, columns col0 + tx + 16j
	// (neighbouring invocations touch neighbouring columns).
	vec4 acc[TM * TV];
	for (int i = 0; i < TM * TV; i++) acc[i] = vec4(0.0);
	int slot = 0;
	for (int k0 = kBegin; k0 < kEnd; k0 += BK) {
#if defined(MODE_CONV_DW)
		kp = kPart(k0 + tid % BK); // the row of every load below
#endif
		for (int l = tid; l < BM * BK; l += THREADS) {
			int m = l / BK, k = l - m * BK;
#if !defined(MODE_GEMM) && !defined(MODE_CONV_DW)
			kp = kTab[slot][k];
#endif
			As[k][m] = loadA(row0 + m, k0 + k, kp);
		}
		for (int l = tid; l < BK * BN; l += THREADS) {
#if defined(MODE_CONV_DW)
			int n = l / BK, k = l - n * BK;
			Bs[k][n] = loadB(k0 + k, col0 + n, kp, colTab[n]);
#else
			int k = l / BN, n = l - k * BN;
#if !defined(MODE_GEMM)
			kp = kTab[slot][k];
#endif
			Bs[k][n] = loadB(k0 + k, col0 + n, kp, jp);
#endif
		}
		SYNC_SHARED;
#if !defined(MODE_GEMM) && !defined(MODE_CONV_DW)
		if (tid < BK) kTab[1 - slot][tid] = kPart(k0 + BK + tid);
#endif
		for (int kk = 0; kk < BK; kk++) {
			vec4 bv[TV];
			for (int v = 0; v < TV; v++)
				bv[v] = vec4(Bs[kk][tx + 64 * v], Bs[kk][tx + 64 * v + 16], Bs[kk][tx + 64 * v + 32], Bs[kk][tx + 64 * v + 48]);
			for (int i = 0; i < TM; i++) {
				float av = As[kk][ty + 8 * i];
				for (int v = 0; v < TV; v++) acc[i * TV + v] += av * bv[v];
			}
		}
		SYNC_SHARED;
		slot = 1 - slot;
	}
	int base = o0 + int(gl_WorkGroupID.z) * splitStride;
	int dst[TN]; // where each of this invocation's columns goes in a row of C
	for (int j = 0; j < TN; j++) {
		int col = col0 + tx + 16 * j;
#if defined(MODE_CONV_DX)
		dst[j] = outColumn(col);
#else
		dst[j] = col;
#endif
	}
	for (int i = 0; i < TM; i++) {
		int r = row0 + ty + 8 * i;
		if (r >= M) break;
		for (int j = 0; j < TN; j++) {
			int col = col0 + tx + 16 * j;
			if (col >= N) break;
			int idx = base + r * ldc + dst[j];
			c[idx] = alpha * acc[i * TV + j / 4][j % 4] + (beta != 0.0 ? beta * c[idx] : 0.0);
		}
	}
}
