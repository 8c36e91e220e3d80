// Reductions: one workgroup per output, a tree in shared memory (reduceSum).

#if defined(OP_SUM_ROWS)
// dst[r] = beta*dst[r] + sum_c x[r, c]
uniform int rows;
uniform int cols;
uniform float beta;
layout(std430, binding = 0) buffer B0 { float dst[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
void main() {
	FOR_EACH_GROUP(r, rows) {
		float s = 0.0;
		for (int c = int(gl_LocalInvocationID.x); c < cols; c += WG) s += x[o1 + r * cols + c];
		s = reduceSum(s);
		if (gl_LocalInvocationID.x == 0u) dst[o0 + r] = beta * dst[o0 + r] + s;
	}
}

#elif defined(OP_SUM_SQUARES2)
// out[0] = sum a^2, out[1] = sum b^2 (one workgroup)
uniform int n;
layout(std430, binding = 0) writeonly buffer B0 { float outp[]; };
layout(std430, binding = 1) readonly buffer B1 { float a[]; };
layout(std430, binding = 2) readonly buffer B2 { float b[]; };
void main() {
	float sa = 0.0, sb = 0.0;
	for (int i = int(gl_LocalInvocationID.x); i < n; i += WG) {
		float x = a[o1 + i], y = b[o2 + i];
		sa += x * x;
		sb += y * y;
	}
	sa = reduceSum(sa);
	sb = reduceSum(sb);
	if (gl_LocalInvocationID.x == 0u) {
		outp[o0] = sa;
		outp[o0 + 1] = sb;
	}
}
#endif
