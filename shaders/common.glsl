// Shared by every shader. WG (and WG_Y for 2-D tiles) is the workgroup
// size, chosen by the backend within the driver's limits. Element-wise
// loops stride over the whole grid, so any size runs with any number of
// workgroups. Tensors are bound as whole buffers; oN is the element offset
// of the tensor bound at binding N (views share a buffer).
#ifndef WG_Y
#define WG_Y 1
#endif
layout(local_size_x = WG, local_size_y = WG_Y, local_size_z = 1) in;

uniform int o0;
uniform int o1;
uniform int o2;
uniform int o3;

#define GRID_STRIDE (gl_NumWorkGroups.x * uint(WG))
#define FOR_EACH(i, n) for (int i = int(gl_GlobalInvocationID.x); i < (n); i += int(GRID_STRIDE))
// Workgroup-per-item loops: one workgroup handles items g, g+groups, ...
#define FOR_EACH_GROUP(g, n) for (int g = int(gl_WorkGroupID.x); g < (n); g += int(gl_NumWorkGroups.x))

// The one rule for shared memory: every exchange between invocations
// through shared variables (a write read by another invocation, or a read
// before another invocation overwrites it) is separated by SYNC_SHARED,
// memoryBarrierShared() then barrier(). barrier() alone orders execution;
// whether it also makes shared writes visible has been read differently
// across GLSL versions and drivers, so the memory barrier is never left
// out.
#define SYNC_SHARED memoryBarrierShared(); barrier()

// reduceSum adds v over the workgroup; every invocation must call it, and
// only invocation 0 may use the result: on llvmpipe the other invocations
// were seen to read partial[0] stale (a two-pass variance that used the
// mean everywhere went wrong), so results go out through invocation 0.
shared float partial[WG];
float reduceSum(float v) {
	uint t = gl_LocalInvocationID.x;
	partial[t] = v;
	SYNC_SHARED;
	for (uint s = uint(WG) / 2u; s > 0u; s >>= 1) {
		if (t < s) partial[t] += partial[t + s];
		SYNC_SHARED;
	}
	float r = partial[0];
	SYNC_SHARED; // the next call overwrites partial
	return r;
}
