// Batch norm's per-channel loops (one row of M values per channel), in C
// so that they vectorize: Go runs them one scalar at a time with a bounds
// check each. Sums are in double, as in the Go versions in norm.go.
// swav_row_moments gives the row's sum and its sum of squared deviations
// from mean = sum/M (two passes).
void swav_row_moments(const float *x, long M, double *sum, double *ss);
// swav_normalize_row: dst = (src - mu) * scale + shift, plus res[i] where
// res is not NULL (a residual), then ReLU if relu.
void swav_normalize_row(float *dst, const float *src, const float *res, long M, float mu, float scale, float shift, int relu);
// swav_bn_backward_row: with g = dy masked where y <= 0 (y NULL: no ReLU),
// *sg = sum g and *sgx = sum g*(x-mu)*is, then
// dx = k * (g - sg/M - (x-mu)*is * sgx/M).
void swav_bn_backward_row(float *dx, const float *x, const float *dy, const float *y, long M, float mu, float is, float k,
                          double *sg, double *sgx);
