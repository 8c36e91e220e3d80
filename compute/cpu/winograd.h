// Winograd F(2x2, 3x3) for 3x3 convolutions with stride 1 and padding 1
// (Lavin and Gray 2016): each 2x2 block of outputs costs 16 products per
// channel pair instead of 36. x and y are [C, N, H, W]; a chunk of images
// [n0, n1) has T = (n1-n0) * ceil(H/2) * ceil(W/2) tiles.
// SMALL_TW: images at most this many tiles wide are transformed side by
// side (winograd.c).
#define SMALL_TW 3
// swav_wino_filter: U[16][Co][C] = G g G^T of every 3x3 filter w[Co][C].
void swav_wino_filter(float *U, const float *w, int Co, int C);
// swav_wino_input: V[16][C][T] = B^T d B of every 4x4 input tile, for
// channels [c0, c1); plane (>= C*T) is the distance between the 16. With
// nrshift > 0, each plane is written packed as swav_sgemm_packed_b reads
// its B, in panels of 1 << nrshift tiles (plane >= C*T rounded up to a
// panel); then (W+1)/2 must be a multiple of 8.
void swav_wino_input(float *V, size_t plane, const float *x, int C, int N, int H, int W, int n0, int n1, int c0, int c1,
		     int nrshift);
// swav_wino_output: y = A^T m A of every tile of M[16][Co][T] (planes
// plane >= Co*T apart), for output channels [o0, o1). Where mu is not
// NULL, each value v of channel c is then written as inference batch norm
// gives it, (v - mu[c]) * scale[c] + shift[c], plus res (shaped as y)
// where res is not NULL, then ReLU if relu: the normalization's pass over
// y done while its rows are in L1.
void swav_wino_output(float *y, const float *M, size_t plane, int Co, int N, int H, int W, int n0, int n1, int o0, int o1,
		      const float *mu, const float *scale, const float *shift, const float *res, int relu);
// swav_wino_outgrad: M[16][Co][T] = A g A^T of every 2x2 tile g of the
// output gradient dy (the adjoint of swav_wino_output), for channels [o0, o1).
void swav_wino_outgrad(float *M, size_t plane, const float *dy, int Co, int N, int H, int W, int n0, int n1, int o0, int o1);
// swav_wino_filter_grad: dw = beta*dw + G^T dU G of every dU[16][Co][C]
// (the adjoint of swav_wino_filter).
void swav_wino_filter_grad(float *dw, const float *dU, int Co, int C, float beta);
