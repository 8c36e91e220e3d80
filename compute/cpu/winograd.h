// Winograd F(4x4, 3x3) for 3x3 convolutions with stride 1 and padding 1
// (Lavin and Gray 2016): each 4x4 block of outputs costs 36 products per
// channel pair instead of 144. x and y are [C, N, H, W]; a chunk of images
// [n0, n1) has T = (n1-n0) * ceil(H/4) * ceil(W/4) tiles, and each
// transform has WINO_PLANES planes, one per position in its 6x6 tile.
#define WINO_M 4	// outputs per tile side
#define WINO_PLANES 36	// (WINO_M + 2)^2
// SMALL_TW: images at most this many tiles wide are transformed side by
// side (winograd.c).
#define SMALL_TW 3
// swav_wino_filter: U[36][Co][C] = G g G^T of every 3x3 filter w[Co][C].
void swav_wino_filter(float *U, const float *w, int Co, int C);
// swav_wino_input: V[36][C][T] = B^T d B of every 6x6 input tile, for
// channels [c0, c1); plane (>= C*T) is the distance between the 36. With
// nrshift > 0, each plane is written packed as swav_sgemm_packed_b reads
// its B, in panels of 1 << nrshift tiles (plane >= C*T rounded up to a
// panel); then ceil(W/4) must be a multiple of 4.
void swav_wino_input(float *V, size_t plane, const float *x, int C, int N, int H, int W, int n0, int n1, int c0, int c1,
		     int nrshift);
// swav_wino_output: y = A^T m A of every tile of M[36][Co][T] (planes
// plane >= Co*T apart), for output channels [o0, o1). Where mu is not
// NULL, each value v of channel c is then written as inference batch norm
// gives it, (v - mu[c]) * scale[c] + shift[c], plus res (shaped as y)
// where res is not NULL, then ReLU if relu: the normalization's pass over
// y done while its rows are in L1.
void swav_wino_output(float *y, const float *M, size_t plane, int Co, int N, int H, int W, int n0, int n1, int o0, int o1,
		      const float *mu, const float *scale, const float *shift, const float *res, int relu);
// swav_wino_outgrad: M[36][Co][T] = A g A^T of every 4x4 tile g of the
// output gradient dy (the adjoint of swav_wino_output), for channels [o0, o1).
void swav_wino_outgrad(float *M, size_t plane, const float *dy, int Co, int N, int H, int W, int n0, int n1, int o0, int o1);
// swav_wino_filter_grad: dw = beta*dw + G^T dU G of every dU[36][Co][C]
// (the adjoint of swav_wino_filter).
void swav_wino_filter_grad(float *dw, const float *dU, int Co, int C, float beta);
