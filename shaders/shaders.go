// Package shaders holds the GLSL compute shaders of the GL backend, one
// file per family of operations, embedded in the binary. One source serves
// desktop GL (#version 430) and GL ES (#version 310 es): Source prepends
// the header of the API and the defines that select an operation and bake
// in its constants.
package shaders

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

//go:embed *.comp *.glsl
var files embed.FS

// Source returns the complete source of family (a .comp file name without
// extension) for GL ES when es, else desktop GL, with defines.
func Source(family string, es bool, defines map[string]string) (string, error) {
	body, err := files.ReadFile(family + ".comp")
	if err != nil {
		return "", fmt.Errorf("shaders: no shader family %q", family)
	}
	common, _ := files.ReadFile("common.glsl")
	var b strings.Builder
	if es {
		b.WriteString("#version 310 es\nprecision highp float;\nprecision highp int;\n")
	} else {
		b.WriteString("#version 430\n")
	}
	keys := make([]string, 0, len(defines))
	for k := range defines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "#define %s %s\n", k, defines[k])
	}
	b.WriteString("#line 1 1\n")
	b.Write(common)
	b.WriteString("#line 1 2\n")
	b.Write(body)
	return b.String(), nil
}
