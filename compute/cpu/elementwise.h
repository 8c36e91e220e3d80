// Element-wise loops of the residual blocks, in C so that they vectorize
// (Go runs them a scalar and a branch at a time).
// swav_add_relu: y = max(a + c, 0).
void swav_add_relu(float *y, const float *a, const float *c, long n);
// swav_relu_backward: dx = dy where y > 0, else 0.
void swav_relu_backward(float *dx, const float *dy, const float *y, long n);
// swav_axpy: y += alpha * x (fused multiply-adds where the processor has
// them, so the last bit may differ from Go's).
void swav_axpy(float *y, float alpha, const float *x, long n);
