package gl

import (
	"unsafe"

	gl43 "github.com/go-gl/gl/v4.3-core/gl"
)

// loadGL43 loads desktop OpenGL 4.3 core through go-gl's v4.3-core package.
func loadGL43(proc func(string) unsafe.Pointer) (*funcs, error) {
	if err := gl43.InitWithProcAddrFunc(proc); err != nil {
		return nil, err
	}
	return &funcs{
		GetString: gl43.GetString, GetIntegerv: gl43.GetIntegerv, GetIntegeri_v: gl43.GetIntegeri_v, GetError: gl43.GetError,
		CreateShader: gl43.CreateShader, ShaderSource: gl43.ShaderSource, CompileShader: gl43.CompileShader,
		GetShaderiv: gl43.GetShaderiv, GetShaderInfoLog: gl43.GetShaderInfoLog, DeleteShader: gl43.DeleteShader,
		CreateProgram: gl43.CreateProgram, AttachShader: gl43.AttachShader, LinkProgram: gl43.LinkProgram,
		GetProgramiv: gl43.GetProgramiv, GetProgramInfoLog: gl43.GetProgramInfoLog, DeleteProgram: gl43.DeleteProgram,
		UseProgram: gl43.UseProgram, GetUniformLocation: gl43.GetUniformLocation, Uniform1i: gl43.Uniform1i, Uniform1f: gl43.Uniform1f,
		GenBuffers: gl43.GenBuffers, DeleteBuffers: gl43.DeleteBuffers, BindBuffer: gl43.BindBuffer, BufferData: gl43.BufferData,
		BufferSubData: gl43.BufferSubData, BindBufferRange: gl43.BindBufferRange, CopyBufferSubData: gl43.CopyBufferSubData,
		MapBufferRange: gl43.MapBufferRange, UnmapBuffer: gl43.UnmapBuffer,
		DispatchCompute: gl43.DispatchCompute, MemoryBarrier: gl43.MemoryBarrier, Finish: gl43.Finish,
		Flush: gl43.Flush, FenceSync: gl43.FenceSync, ClientWaitSync: gl43.ClientWaitSync, DeleteSync: gl43.DeleteSync,
	}, nil
}
