#include <stddef.h>
// Lowering for convolutions (im2col and its adjoint), in C for the same
// reason as the SGEMM: rows of a few dozen pixels, where Go's per-row
// slicing and bounds checks cost more than the copy. x and dx are
// [C, N, H, W]; col is [C*k*k, (n1-n0)*Ho*Wo] for images [n0, n1), its
// rows ld floats apart.
typedef struct {
	int C, N, H, W, Ho, Wo, k, stride, pad;
} swav_conv_geom;
// swav_im2col writes rows [r0, r1) of col.
void swav_im2col(float *col, size_t ld, const float *x, swav_conv_geom g, int n0, int n1, int r0, int r1);
// swav_col2im adds col onto channels [c0, c1) of dx.
void swav_col2im(float *dx, const float *col, size_t ld, swav_conv_geom g, int n0, int n1, int c0, int c1);
