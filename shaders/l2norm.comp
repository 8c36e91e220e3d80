// L2 normalization of the columns of a [D, N] matrix (and its gradient),
// or of the rows of a [R, D] matrix in place; eps as F.normalize.
uniform int D;
uniform int NC; // columns (or rows for OP_ROWS)
#if defined(OP_COLS)
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
layout(std430, binding = 1) writeonly buffer B1 { float norms[]; };
layout(std430, binding = 2) readonly buffer B2 { float x[]; };
void main() {
	FOR_EACH(c, NC) {
		float s = 0.0;
		for (int d = 0; d < D; d++) {
			float v = x[o2 + d * NC + c];
			s += v * v;
		}
		float nrm = max(sqrt(s), 1e-12);
		norms[o1 + c] = nrm;
		for (int d = 0; d < D; d++) y[o0 + d * NC + c] = x[o2 + d * NC + c] / nrm;
	}
}
#elif defined(OP_COLS_BACKWARD)
layout(std430, binding = 0) writeonly buffer B0 { float dx[]; };
layout(std430, binding = 1) readonly buffer B1 { float dy[]; };
layout(std430, binding = 2) readonly buffer B2 { float y[]; };
layout(std430, binding = 3) readonly buffer B3 { float norms[]; };
void main() {
	FOR_EACH(c, NC) {
		float dot = 0.0;
		for (int d = 0; d < D; d++) dot += y[o2 + d * NC + c] * dy[o1 + d * NC + c];
		float inv = 1.0 / norms[o3 + c];
		for (int d = 0; d < D; d++) dx[o0 + d * NC + c] = (dy[o1 + d * NC + c] - y[o2 + d * NC + c] * dot) * inv;
	}
}
#elif defined(OP_ROWS)
layout(std430, binding = 0) buffer B0 { float x[]; };
void main() {
	FOR_EACH(r, NC) {
		float s = 0.0;
		for (int d = 0; d < D; d++) s += x[o0 + r * D + d] * x[o0 + r * D + d];
		float inv = 1.0 / max(sqrt(s), 1e-12);
		for (int d = 0; d < D; d++) x[o0 + r * D + d] *= inv;
	}
}
#endif
