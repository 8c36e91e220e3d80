// normalize_row is batch norm's normalization of one row (one channel's
// values): dst = (src - mu) * scale + shift, plus res[i] where res is not
// NULL (a residual), then ReLU if relu. Inline, so that the convolution's
// output transform (winograd.c) applies it to a row it has just written
// with the very expressions the separate pass (norm.c) uses.
static inline __attribute__((always_inline)) void normalize_row(float *dst, const float *src, const float *res, long M,
								 float mu, float scale, float shift, int relu) {
	if (res) // batch norm and the residual add in one pass (a residual block's end)
		for (long i = 0; i < M; i++) {
			float o = (src[i] - mu) * scale + shift;
			o = o + res[i];
			dst[i] = relu && o < 0 ? 0 : o;
		}
	else if (relu)
		for (long i = 0; i < M; i++) {
			float o = (src[i] - mu) * scale + shift;
			dst[i] = o < 0 ? 0 : o;
		}
	else
		for (long i = 0; i < M; i++) dst[i] = (src[i] - mu) * scale + shift;
}
