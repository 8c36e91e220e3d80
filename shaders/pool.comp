// Global average pooling of [C, N, H, W] to [C, N] (HW = H*W), and back.
uniform int n;  // C*N
uniform int HW;
#if defined(OP_GAP)
layout(std430, binding = 0) writeonly buffer B0 { float y[]; };
layout(std430, binding = 1) readonly buffer B1 { float x[]; };
void main() {
	FOR_EACH(i, n) {
		float s = 0.0;
		for (int j = 0; j < HW; j++) s += x[o1 + i * HW + j];
		y[o0 + i] = s / float(HW);
	}
}
#elif defined(OP_GAP_BACKWARD)
layout(std430, binding = 0) writeonly buffer B0 { float dx[]; };
layout(std430, binding = 1) readonly buffer B1 { float dy[]; };
void main() {
	FOR_EACH(i, n * HW) dx[o0 + i] = dy[o1 + i / HW] / float(HW);
}
#endif
