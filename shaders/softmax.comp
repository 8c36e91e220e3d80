// Softmax over the rows of scores [B, K] at temperature T, and SwAV's
// swapped cross-entropy: per row b, l_b = -sum_k q[b,k] log softmax(s[b]/T)_k
// and grad[b] += w/(T*B) * (softmax*sum(q) - q); then loss += w*mean(l).
uniform int B;
uniform int K;
uniform float invT;
uniform float weight;

#if defined(OP_CE_ROWS)
layout(std430, binding = 0) buffer B0 { float grad[]; };
layout(std430, binding = 1) readonly buffer B1 { float s[]; };
layout(std430, binding = 2) readonly buffer B2 { float q[]; };
layout(std430, binding = 3) writeonly buffer B3 { float rowLoss[]; };
void main() {
	FOR_EACH(r, B) {
		float m = -3.402823e38;
		for (int k = 0; k < K; k++) m = max(m, s[o1 + r * K + k] * invT);
		float se = 0.0;
		for (int k = 0; k < K; k++) se += exp(s[o1 + r * K + k] * invT - m);
		float lse = m + log(se);
		float l = 0.0, qs = 0.0;
		for (int k = 0; k < K; k++) {
			float qv = q[o2 + r * K + k];
			l -= qv * (s[o1 + r * K + k] * invT - lse);
			qs += qv;
		}
		float g = weight * invT / float(B);
		for (int k = 0; k < K; k++) {
			float p = exp(s[o1 + r * K + k] * invT - lse);
			grad[o0 + r * K + k] += g * (p * qs - q[o2 + r * K + k]);
		}
		rowLoss[o3 + r] = l;
	}
}
#elif defined(OP_CE_REDUCE)
layout(std430, binding = 0) buffer B0 { float loss[]; };
layout(std430, binding = 1) readonly buffer B1 { float rowLoss[]; };
void main() {
	float s = 0.0;
	for (int i = int(gl_LocalInvocationID.x); i < B; i += WG) s += rowLoss[o1 + i];
	s = reduceSum(s);
	if (gl_LocalInvocationID.x == 0u) loss[o0] += weight * s / float(B);
}
#elif defined(OP_SOFTMAX)
layout(std430, binding = 0) writeonly buffer B0 { float p[]; };
layout(std430, binding = 1) readonly buffer B1 { float s[]; };
void main() {
	FOR_EACH(r, B) {
		float m = -3.402823e38;
		for (int k = 0; k < K; k++) m = max(m, s[o1 + r * K + k] * invT);
		float se = 0.0;
		for (int k = 0; k < K; k++) se += exp(s[o1 + r * K + k] * invT - m);
		for (int k = 0; k < K; k++) p[o0 + r * K + k] = exp(s[o1 + r * K + k] * invT - m) / se;
	}
}
#endif
