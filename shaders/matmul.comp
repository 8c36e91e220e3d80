// Tiled matrix products in shared memory: C[M,N] = alpha*A*B + beta*C,
// a 16x16 tile per workgroup of 16x8 invocations (two outputs each, 128
// invocations: within GL ES 3.1's minimum). The convolutions are the same
// product with A and B gathered straight from the tensors (implicit GEMM,
// no lowered copy in memory):
//   MODE_GEMM         A, B plain matrices, optionally transposed
//   MODE_CONV_FWD     y[Co, N*Ho*Wo] = w[Co, C*k*k] * im2col(x)
//   MODE_CONV_DW      dw[Co, C*k*k]  = dy[Co, N*Ho*Wo] * im2col(x)^T
//   MODE_CONV_DX      dx[C, N*H*W]   = w^T[C, Co*k*k] * col(dy) (the transposed convolution)
#define TS 16
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

layout(std430, binding = 0) buffer B0 { float c[]; };
layout(std430, binding = 1) readonly buffer B1 { float a[]; };
layout(std430, binding = 2) readonly buffer B2 { float b[]; };

shared float As[TS][TS + 1];
shared float Bs[TS][TS + 1];

// im2col(x)[r, q]: r = (channel, tap), q = (image, output pixel).
float im2col(int r, int q) {
	int kk = KS * KS;
	int ch = r / kk, t = r - ch * kk;
	int kh = t / KS, kw = t - kh * KS;
	int hw = Ho * Wo;
	int img = q / hw, p = q - img * hw;
	int oh = p / Wo, ow = p - oh * Wo;
	int ih = oh * S - P + kh, iw = ow * S - P + kw;
	if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.0;
	return b[o2 + ((ch * NB + img) * H + ih) * W + iw];
}

float loadA(int i, int k) {
	if (i >= M || k >= K) return 0.0;
#if defined(MODE_GEMM)
	return transA != 0 ? a[o1 + k * lda + i] : a[o1 + i * lda + k];
#elif defined(MODE_CONV_FWD) || defined(MODE_CONV_DW)
	return a[o1 + i * K + k];
#else // MODE_CONV_DX: A(ch, (co, tap)) = w[co, ch, tap]
	int kk = KS * KS;
	int co = k / kk, t = k - co * kk;
	return a[o1 + (co * C + i) * kk + t];
#endif
}

float loadB(int k, int j) {
	if (k >= K || j >= N) return 0.0;
#if defined(MODE_GEMM)
	return transB != 0 ? b[o2 + j * ldb + k] : b[o2 + k * ldb + j];
#elif defined(MODE_CONV_FWD)
	return im2col(k, j);
#elif defined(MODE_CONV_DW)
	return im2col(j, k);
#else // MODE_CONV_DX: dy[co, img, oh, ow] where the tap (kh, kw) of output (oh, ow) reads input pixel j
	int kk = KS * KS;
	int co = k / kk, t = k - co * kk;
	int kh = t / KS, kw = t - kh * KS;
	int hw = H * W;
	int img = j / hw, p = j - img * hw;
	int ih = p / W, iw = p - ih * W;
	int y = ih + P - kh, x = iw + P - kw;
	if (y < 0 || x < 0 || y % S != 0 || x % S != 0) return 0.0;
	y /= S;
	x /= S;
	if (y >= Ho || x >= Wo) return 0.0;
	return b[o2 + ((co * NB + img) * Ho + y) * Wo + x];
#endif
}

void main() {
	int tx = int(gl_LocalInvocationID.x), ty = int(gl_LocalInvocationID.y);
	int row0 = int(gl_WorkGroupID.y) * TS, col0 = int(gl_WorkGroupID.x) * TS;
	float acc0 = 0.0, acc1 = 0.0;
	for (int k0 = 0; k0 < K; k0 += TS) {
		As[ty][tx] = loadA(row0 + ty, k0 + tx);
		As[ty + 8][tx] = loadA(row0 + ty + 8, k0 + tx);
		Bs[ty][tx] = loadB(k0 + ty, col0 + tx);
		Bs[ty + 8][tx] = loadB(k0 + ty + 8, col0 + tx);
		barrier();
		for (int kk = 0; kk < TS; kk++) {
			float bv = Bs[kk][tx];
			acc0 += As[ty][kk] * bv;
			acc1 += As[ty + 8][kk] * bv;
		}
		barrier();
	}
	int col = col0 + tx;
	if (col >= N) return;
	int r0 = row0 + ty, r1 = row0 + ty + 8;
	if (r0 < M) {
		int idx = o0 + r0 * ldc + col;
		c[idx] = alpha * acc0 + (beta != 0.0 ? beta * c[idx] : 0.0);
	}
	if (r1 < M) {
		int idx = o0 + r1 * ldc + col;
		c[idx] = alpha * acc1 + (beta != 0.0 ? beta * c[idx] : 0.0);
	}
}
