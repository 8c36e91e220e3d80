// Sinkhorn-Knopp on q [B, K] (rows samples, columns prototypes), as the
// official SwAV code: Q = exp(scores/eps) (the global maximum subtracted
// first, so exp never overflows), then alternately every column is scaled
// to sum 1/K and every row to 1/B; the output rows sum to 1. The division
// of Q by its total is left out: the first column scaling cancels it.
uniform int B;
uniform int K;
uniform float invEps;
uniform int last;

#if defined(OP_MAX)
layout(std430, binding = 0) writeonly buffer B0 { float outp[]; };
layout(std430, binding = 1) readonly buffer B1 { float s[]; };
void main() {
	uint t = gl_LocalInvocationID.x;
	float m = -3.402823e38;
	for (int i = int(t); i < B * K; i += WG) m = max(m, s[o1 + i]);
	partial[t] = m;
	SYNC_SHARED;
	for (uint st = uint(WG) / 2u; st > 0u; st >>= 1) {
		if (t < st) partial[t] = max(partial[t], partial[t + st]);
		SYNC_SHARED;
	}
	if (t == 0u) outp[o0] = partial[0];
}
#elif defined(OP_EXP)
layout(std430, binding = 0) writeonly buffer B0 { float q[]; };
layout(std430, binding = 1) readonly buffer B1 { float s[]; };
layout(std430, binding = 2) readonly buffer B2 { float mx[]; };
void main() {
	float m = mx[o2];
	FOR_EACH(i, B * K) q[o0 + i] = exp((s[o1 + i] - m) * invEps);
}
#elif defined(OP_COLS)
layout(std430, binding = 0) buffer B0 { float q[]; };
void main() {
	FOR_EACH(k, K) {
		float sum = 0.0;
		for (int r = 0; r < B; r++) sum += q[o0 + r * K + k];
		float f = 1.0 / (sum * float(K));
		for (int r = 0; r < B; r++) q[o0 + r * K + k] *= f;
	}
}
#elif defined(OP_ROWS)
layout(std430, binding = 0) buffer B0 { float q[]; };
void main() {
	FOR_EACH(r, B) {
		float sum = 0.0;
		for (int k = 0; k < K; k++) sum += q[o0 + r * K + k];
		// the final multiplication by B folds into the last row scaling
		float f = last != 0 ? 1.0 / sum : 1.0 / (sum * float(B));
		for (int k = 0; k < K; k++) q[o0 + r * K + k] *= f;
	}
}
#endif
