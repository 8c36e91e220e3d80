package gl

// #include <stdlib.h>
import "C"

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unsafe"

	"github.com/swavd/swavd/shaders"
)

// program is a linked compute program and its uniforms: every uniform its
// source declares, with its location, resolved once when it is built (-1
// for one the compiler dropped because this operation does not use it).
type program struct {
	name     string
	id       uint32
	uniforms map[string]int32
}

// declaredUniform matches a uniform declaration of the shaders' style: one
// scalar per line.
var declaredUniform = regexp.MustCompile(`(?m)^\s*uniform\s+\w+\s+(\w+)\s*;`)

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
	pr := &program{name: name, id: prog, uniforms: map[string]int32{}}
	for _, m := range declaredUniform.FindAllStringSubmatch(src, -1) {
		cn := C.CString(m[1])
		pr.uniforms[m[1]] = f.GetUniformLocation(prog, (*uint8)(unsafe.Pointer(cn)))
		C.free(unsafe.Pointer(cn))
	}
	return pr, nil
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

// location is where a uniform of p lives, and whether to set it: a name
// the shader does not declare is an error (the Go side and the shader
// disagree: it would be ignored by GL and leave a value unset), recorded
// like a device error so the step fails; a declared one the compiler
// dropped is skipped.
func (b *Backend) location(p *program, name string) (int32, bool) {
	l, ok := p.uniforms[name]
	if !ok {
		b.fail(fmt.Errorf("gl: shader %s has no uniform %q", p.name, name))
		return -1, false
	}
	return l, l >= 0
}
