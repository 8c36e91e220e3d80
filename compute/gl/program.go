package gl

// #include <stdlib.h>
import "C"

import (
	"fmt"
	"sort"
	"strings"
	"unsafe"

	"github.com/swavd/swavd/shaders"
)

// program is a linked compute program and its uniform locations.
type program struct {
	name     string
	id       uint32
	uniforms map[string]int32
}

// programKey identifies a program by its family and defines.
func programKey(family string, defines map[string]string) string {
	keys := make([]string, 0, len(defines))
	for k := range defines {
		keys = append(keys, k+"="+defines[k])
	}
	sort.Strings(keys)
	return family + "[" + strings.Join(keys, ",") + "]"
}

// compile builds family with defines on the context thread. Errors carry
// the shader's name and the driver's log.
func (c *context) compile(family string, defines map[string]string) (*program, error) {
	name := programKey(family, defines)
	src, err := shaders.Source(family, c.api == GLES31, defines)
	if err != nil {
		return nil, err
	}
	f := c.fn
	sh := f.CreateShader(glComputeShader)
	cs := C.CString(src)
	defer C.free(unsafe.Pointer(cs))
	p := (*uint8)(unsafe.Pointer(cs))
	f.ShaderSource(sh, 1, &p, nil)
	f.CompileShader(sh)
	var ok int32
	f.GetShaderiv(sh, glCompileStatus, &ok)
	if ok == 0 {
		log := c.infoLog(sh, f.GetShaderiv, f.GetShaderInfoLog)
		f.DeleteShader(sh)
		return nil, fmt.Errorf("gl: shader %s does not compile on %s: %s", name, c.info.Renderer, log)
	}
	prog := f.CreateProgram()
	f.AttachShader(prog, sh)
	f.LinkProgram(prog)
	f.DeleteShader(sh)
	f.GetProgramiv(prog, glLinkStatus, &ok)
	if ok == 0 {
		log := c.infoLog(prog, f.GetProgramiv, f.GetProgramInfoLog)
		f.DeleteProgram(prog)
		return nil, fmt.Errorf("gl: shader %s does not link on %s: %s", name, c.info.Renderer, log)
	}
	return &program{name: name, id: prog, uniforms: map[string]int32{}}, nil
}

func (c *context) infoLog(obj uint32, iv func(uint32, uint32, *int32), get func(uint32, int32, *int32, *uint8)) string {
	var n int32
	iv(obj, glInfoLogLength, &n)
	if n <= 1 {
		return "(no log)"
	}
	buf := make([]byte, n)
	get(obj, n, nil, &buf[0])
	return strings.TrimSpace(string(buf[:n-1]))
}

// location returns (and caches) a uniform's location; -1 if the program
// has no such active uniform, which GL ignores on set.
func (c *context) location(p *program, name string) int32 {
	if l, ok := p.uniforms[name]; ok {
		return l
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	l := c.fn.GetUniformLocation(p.id, (*uint8)(unsafe.Pointer(cs)))
	p.uniforms[name] = l
	return l
}
