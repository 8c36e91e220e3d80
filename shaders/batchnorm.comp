// Batch normalization over the rows of a [C, M] tensor. Per-channel
// vectors travel in one packed parameter buffer p (gamma, beta, mean,
// 1/std, unbiased variance, and the two backward sums, at the offsets
// below) so that no pass binds more than four buffers, GL ES 3.1's minimum.
uniform int CH;   // channels
uniform int MC;   // elements per channel
uniform float eps;
uniform float momentum;
uniform int relu;
uniform int pGamma;
uniform int pBeta;
uniform int pMean;
uniform int pInv;
uniform int pVar;
uniform int pS1;
uniform int pS2;


#if defined(OP_STATS)
// p[mean], p[inv], p[var] of each row of x; one workgroup per channel.
// Each invocation keeps the moments of its elements (count, mean, sum of
// squared deviations: Welford's update), and a tree in shared memory
// merges them pairwise (Chan et al.): as accurate as two passes, in one,
// and no invocation but the first needs the mean.
layout(std430, binding = 0) buffer B0 { float p[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
shared float mN[WG];
shared float mMean[WG];
shared float mM2[WG];
void main() {
	uint t = gl_LocalInvocationID.x;
	FOR_EACH_GROUP(ch, CH) {
		int base = o1 + ch * MC;
		float n = 0.0, mean = 0.0, m2 = 0.0;
		for (int i = int(t); i < MC; i += WG) {
			float v = x[base + i];
			n += 1.0;
			float d = v - mean;
			mean += d / n;
			m2 += d * (v - mean);
		}
		mN[t] = n;
		mMean[t] = mean;
		mM2[t] = m2;
		SYNC_SHARED;
		for (uint s = uint(WG) / 2u; s > 0u; s >>= 1) {
			if (t < s && mN[t + s] > 0.0) {
				float na = mN[t], nb = mN[t + s], nn = na + nb;
				float d = mMean[t + s] - mMean[t];
				mMean[t] += d * nb / nn;
				mM2[t] += mM2[t + s] + d * d * na * nb / nn;
				mN[t] = nn;
			}
			SYNC_SHARED;
		}
		if (t == 0u) {
			float ss = max(mM2[0], 0.0);
			p[o0 + pMean + ch] = mMean[0];
			p[o0 + pInv + ch] = inversesqrt(ss / float(MC) + eps);
			p[o0 + pVar + ch] = MC > 1 ? ss / float(MC - 1) : ss;
		}
		SYNC_SHARED; // the next channel reuses the arrays
	}
}

#elif defined(OP_RUNNING)
layout(std430, binding = 0) readonly buffer B0 { float p[]; };
layout(std430, binding = 1) buffer B1 { float rm[]; };
layout(std430, binding = 2) buffer B2 { float rv[]; };
void main() {
	FOR_EACH(ch, CH) {
		rm[o1 + ch] = (1.0 - momentum) * rm[o1 + ch] + momentum * p[o0 + pMean + ch];
		rv[o2 + ch] = (1.0 - momentum) * rv[o2 + ch] + momentum * p[o0 + pVar + ch];
	}
}

#elif defined(OP_INFER_PREP)
// p[mean] = running mean, p[inv] = 1/sqrt(running var + eps)
layout(std430, binding = 0) buffer B0 { float p[]; };
layout(std430, binding = 1) readonly buffer B1 { float rm[]; };
layout(std430, binding = 2) readonly buffer B2 { float rv[]; };
void main() {
	FOR_EACH(ch, CH) {
		p[o0 + pMean + ch] = rm[o1 + ch];
		p[o0 + pInv + ch] = inversesqrt(rv[o2 + ch] + eps);
	}
}

#elif defined(OP_NORMALIZE)
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
layout(std430, binding = 2) readonly buffer B2 { float p[]; };
// Workgroups along y are channels: the channel's constants are read once.
void main() {
	int ch = int(gl_WorkGroupID.y), base = ch * MC;
	float mu = p[o2 + pMean + ch], sc = p[o2 + pInv + ch] * p[o2 + pGamma + ch], bt = p[o2 + pBeta + ch];
	FOR_EACH(i, MC) {
		float v = (x[o1 + base + i] - mu) * sc + bt;
		y[o0 + base + i] = relu != 0 ? max(v, 0.0) : v;
	}
}

#elif defined(OP_BACKWARD_SUMS)
// p[s1] = sum g, p[s2] = sum g*xhat per channel (g is dy, masked by the ReLU already)
layout(std430, binding = 0) buffer B0 { float p[]; };
layout(std430, binding = 1) readonly buffer B1 { float g[]; };
layout(std430, binding = 2) readonly buffer B2 { float x[]; };
void main() {
	FOR_EACH_GROUP(ch, CH) {
		int base = ch * MC;
		float mu = p[o0 + pMean + ch], is = p[o0 + pInv + ch];
		float s1 = 0.0, s2 = 0.0;
		for (int i = int(gl_LocalInvocationID.x); i < MC; i += WG) {
			float gv = g[o1 + base + i];
			s1 += gv;
			s2 += gv * (x[o2 + base + i] - mu) * is;
		}
		s1 = reduceSum(s1);
		s2 = reduceSum(s2);
		if (gl_LocalInvocationID.x == 0u) {
			p[o0 + pS1 + ch] = s1;
			p[o0 + pS2 + ch] = s2;
		}
	}
}

#elif defined(OP_BACKWARD_DX)
layout(std430, binding = 0) writeonly buffer B0 { float dx[]; };
layout(std430, binding = 1) readonly buffer B1 { float g[]; };
layout(std430, binding = 2) readonly buffer B2 { float x[]; };
layout(std430, binding = 3) readonly buffer B3 { float p[]; };
// Workgroups along y are channels, as in NORMALIZE.
void main() {
	float invM = 1.0 / float(MC);
	int ch = int(gl_WorkGroupID.y), base = ch * MC;
	float mu = p[o3 + pMean + ch], is = p[o3 + pInv + ch];
	float k = p[o3 + pGamma + ch] * is;
	float m1 = p[o3 + pS1 + ch] * invM, m2 = p[o3 + pS2 + ch] * invM;
	FOR_EACH(i, MC) {
		float xhat = (x[o2 + base + i] - mu) * is;
		dx[o0 + base + i] = k * (g[o1 + base + i] - m1 - xhat * m2);
	}
}
#endif
