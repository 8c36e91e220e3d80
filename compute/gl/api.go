package gl

import "unsafe"

// funcs are the GL entry points the backend uses. GL 4.3 core and GL ES
// 3.1 share them, with the same names and enums; each API fills the table
// from its go-gl package.
type funcs struct {
	GetString          func(name uint32) *uint8
	GetIntegerv        func(pname uint32, data *int32)
	GetIntegeri_v      func(target, index uint32, data *int32)
	GetError           func() uint32
	CreateShader       func(kind uint32) uint32
	ShaderSource       func(shader uint32, count int32, src **uint8, length *int32)
	CompileShader      func(shader uint32)
	GetShaderiv        func(shader, pname uint32, params *int32)
	GetShaderInfoLog   func(shader uint32, bufSize int32, length *int32, log *uint8)
	DeleteShader       func(shader uint32)
	CreateProgram      func() uint32
	AttachShader       func(program, shader uint32)
	LinkProgram        func(program uint32)
	GetProgramiv       func(program, pname uint32, params *int32)
	GetProgramInfoLog  func(program uint32, bufSize int32, length *int32, log *uint8)
	DeleteProgram      func(program uint32)
	UseProgram         func(program uint32)
	GetUniformLocation func(program uint32, name *uint8) int32
	Uniform1i          func(location, v int32)
	Uniform1f          func(location int32, v float32)
	GenBuffers         func(n int32, buffers *uint32)
	DeleteBuffers      func(n int32, buffers *uint32)
	BindBuffer         func(target, buffer uint32)
	BufferData         func(target uint32, size int, data unsafe.Pointer, usage uint32)
	BufferSubData      func(target uint32, offset, size int, data unsafe.Pointer)
	BindBufferRange    func(target, index, buffer uint32, offset, size int)
	CopyBufferSubData  func(readTarget, writeTarget uint32, readOffset, writeOffset, size int)
	MapBufferRange     func(target uint32, offset, length int, access uint32) unsafe.Pointer
	UnmapBuffer        func(target uint32) bool
	DispatchCompute    func(x, y, z uint32)
	MemoryBarrier      func(barriers uint32)
	Finish             func()
	Flush              func()
	FenceSync          func(condition, flags uint32) uintptr
	ClientWaitSync     func(sync uintptr, flags uint32, timeout uint64) uint32
	DeleteSync         func(sync uintptr)
}

// GL enums (identical in GL 4.3 and GL ES 3.1).
const (
	glVendor                   = 0x1F00
	glRenderer                 = 0x1F01
	glVersion                  = 0x1F02
	glShadingLanguageVersion   = 0x8B8C
	glComputeShader            = 0x91B9
	glCompileStatus            = 0x8B81
	glLinkStatus               = 0x8B82
	glInfoLogLength            = 0x8B84
	glShaderStorageBuffer      = 0x90D2
	glCopyReadBuffer           = 0x8F36
	glCopyWriteBuffer          = 0x8F37
	glDynamicCopy              = 0x88EA
	glMapReadBit               = 0x0001
	glShaderStorageBarrierBit  = 0x00002000
	glBufferUpdateBarrierBit   = 0x00000200
	glAllBarrierBits           = 0xFFFFFFFF
	glMaxComputeWorkGroupInv   = 0x90EB
	glMaxComputeWorkGroupSize  = 0x91BF
	glMaxComputeWorkGroupCount = 0x91BE
	glMaxComputeSharedMemory   = 0x8262
	glMaxComputeSSBOBlocks     = 0x90DB
	glMaxSSBOBindings          = 0x90DD
	glSSBOOffsetAlignment      = 0x90DF
	glOutOfMemory              = 0x0505
	glNoError                  = 0
)
