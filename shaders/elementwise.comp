// Element-wise operations, one per OP_ define.
uniform int n;
uniform float alpha;

#if defined(OP_FILL)
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
void main() { FOR_EACH(i, n) y[o0 + i] = alpha; }

#elif defined(OP_COPY)
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
void main() { FOR_EACH(i, n) y[o0 + i] = x[o1 + i]; }

#elif defined(OP_AXPY)
layout(std430, binding = 0) buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
void main() { FOR_EACH(i, n) y[o0 + i] += alpha * x[o1 + i]; }

#elif defined(OP_ADD_RELU)
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float a[]; };
layout(std430, binding = 2) readonly buffer B2 { float b[]; };
void main() { FOR_EACH(i, n) y[o0 + i] = max(a[o1 + i] + b[o2 + i], 0.0); }

#elif defined(OP_RELU_BACKWARD)
layout(std430, binding = 0) writeonly buffer B0 { float dx[]; };
layout(std430, binding = 1) readonly buffer B1 { float dy[]; };
layout(std430, binding = 2) readonly buffer B2 { float y[]; };
void main() { FOR_EACH(i, n) dx[o0 + i] = y[o2 + i] > 0.0 ? dy[o1 + i] : 0.0; }

#elif defined(OP_ADD_BIAS)
// y [rows, cols] += bias[row]
uniform int cols;
layout(std430, binding = 0) buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float bias[]; };
void main() { FOR_EACH(i, n) y[o0 + i] += bias[o1 + i / cols]; }

#elif defined(OP_COPY_COLUMNS)
// n = rows*count; copies columns [sc, sc+count) of x (ld1) to [dc, ...) of y (ld0)
uniform int count;
uniform int ld0;
uniform int ld1;
uniform int dc;
uniform int sc;
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
void main() {
	FOR_EACH(i, n) {
		int r = i / count, c = i - r * count;
		y[o0 + r * ld0 + dc + c] = x[o1 + r * ld1 + sc + c];
	}
}

#elif defined(OP_SUM_SPLITS)
// y [n/cols, ldc] = sum over splits of x [splits, n/cols, cols] + beta*y:
// the partial products of a matrix product split along K.
uniform int cols;
uniform int ldc;
uniform int splits;
uniform float beta;
layout(std430, binding = 0) buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
void main() {
	FOR_EACH(i, n) {
		float s = 0.0;
		for (int z = 0; z < splits; z++) s += x[o1 + z * n + i];
		int r = i / cols, idx = o0 + r * ldc + (i - r * cols);
		y[idx] = s + (beta != 0.0 ? beta * y[idx] : 0.0);
	}
}

#elif defined(OP_SGD)
// PyTorch's SGD with momentum and weight decay; with LARS, norms holds
// ||w||^2 and ||g||^2 and scales the step by the trust ratio.
uniform float lr;
uniform float momentum;
uniform float decay;
uniform float trust;
uniform int lars;
layout(std430, binding = 0) buffer B0 { float w[]; };
layout(std430, binding = 1) readonly buffer B1 { float g[]; };
layout(std430, binding = 2) buffer B2 { float m[]; };
layout(std430, binding = 3) readonly buffer B3 { float norms[]; };
void main() {
	float scale = 1.0;
	if (lars != 0) {
		float wn = sqrt(norms[o3]), gn = sqrt(norms[o3 + 1]);
		if (wn > 0.0 && gn > 0.0) scale = trust * wn / (gn + decay * wn);
	}
	FOR_EACH(i, n) {
		float d = (g[o1 + i] + decay * w[o0 + i]) * scale;
		float v = momentum * m[o2 + i] + d;
		m[o2 + i] = v;
		w[o0 + i] -= lr * v;
	}
}
#endif
