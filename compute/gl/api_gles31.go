package gl

import (
	"unsafe"

	gles "github.com/go-gl/gl/v3.1/gles2"
)

// loadGLES31 loads OpenGL ES 3.1 through go-gl's v3.1/gles2 package.
func loadGLES31(proc func(string) unsafe.Pointer) (*funcs, error) {
	if err := gles.InitWithProcAddrFunc(proc); err != nil {
		return nil, err
	}
	return &funcs{
		GetString: gles.GetString, GetIntegerv: gles.GetIntegerv, GetIntegeri_v: gles.GetIntegeri_v, GetError: gles.GetError,
		CreateShader: gles.CreateShader, ShaderSource: gles.ShaderSource, CompileShader: gles.CompileShader,
		GetShaderiv: gles.GetShaderiv, GetShaderInfoLog: gles.GetShaderInfoLog, DeleteShader: gles.DeleteShader,
		CreateProgram: gles.CreateProgram, AttachShader: gles.AttachShader, LinkProgram: gles.LinkProgram,
		GetProgramiv: gles.GetProgramiv, GetProgramInfoLog: gles.GetProgramInfoLog, DeleteProgram: gles.DeleteProgram,
		UseProgram: gles.UseProgram, GetUniformLocation: gles.GetUniformLocation, Uniform1i: gles.Uniform1i, Uniform1f: gles.Uniform1f,
		GenBuffers: gles.GenBuffers, DeleteBuffers: gles.DeleteBuffers, BindBuffer: gles.BindBuffer, BufferData: gles.BufferData,
		BufferSubData: gles.BufferSubData, BindBufferRange: gles.BindBufferRange, CopyBufferSubData: gles.CopyBufferSubData,
		MapBufferRange: gles.MapBufferRange, UnmapBuffer: gles.UnmapBuffer,
		DispatchCompute: gles.DispatchCompute, MemoryBarrier: gles.MemoryBarrier, Finish: gles.Finish,
		Flush: gles.Flush, FenceSync: gles.FenceSync, ClientWaitSync: gles.ClientWaitSync, DeleteSync: gles.DeleteSync,
	}, nil
}
