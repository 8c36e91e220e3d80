package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/compute/gl"
	"github.com/swavd/swavd/config"
)

// configFlags are the flags every command shares that set config keys.
type configFlags struct {
	fs   *pflag.FlagSet
	file *string
	keys map[string]string // config key -> flag name
	// notGL says why compute.backend auto chose the CPU, after open.
	notGL string
}

func newConfigFlags(name string) *configFlags {
	fs := pflag.NewFlagSet("swavd "+name, pflag.ContinueOnError)
	c := &configFlags{fs: fs, keys: map[string]string{}}
	c.file = fs.String("config", "", "YAML configuration file")
	c.key("preset", "preset", "", "named preset: "+fmt.Sprint(config.Presets()))
	c.key("compute.backend", "backend", "", "compute backend: auto, gl, gles or cpu")
	return c
}

// key adds a string flag that sets a config key when given.
func (c *configFlags) key(key, flag, def, usage string) {
	c.fs.String(flag, def, usage)
	c.keys[key] = flag
}

// open loads the configuration and opens the backend it names; close it.
func (c *configFlags) open(preset string) (*config.Config, compute.Backend, error) {
	cfg, err := c.load(preset)
	if err != nil {
		return nil, nil, err
	}
	be, notGL, err := newBackend(cfg)
	if err != nil {
		return nil, nil, err
	}
	c.notGL = notGL
	return cfg, be, nil
}

func (c *configFlags) load(preset string) (*config.Config, error) {
	m := map[string]*pflag.Flag{}
	for k, f := range c.keys {
		m[k] = c.fs.Lookup(f)
	}
	return config.Load(config.Options{File: *c.file, Flags: m, Environ: os.Environ(), Preset: preset})
}

// newBackend opens the configured backend. gl and gles must work; auto
// tries GL 4.3, then GLES 3.1, keeps the first that runs on a GPU (not a
// software renderer such as llvmpipe, which trains tens of times slower
// than the CPU backend) and passes the self-test against the CPU backend,
// and otherwise falls back to the CPU, saying why (on stderr, and in
// notGL for the daemon's status).
func newBackend(cfg *config.Config) (be compute.Backend, notGL string, err error) {
	switch cfg.Compute.Backend {
	case "cpu":
		return cpu.New(), "", nil
	case "gl", "gles":
		api := gl.GL43
		if cfg.Compute.Backend == "gles" {
			api = gl.GLES31
		}
		b, err := openGL(api, cfg)
		if err != nil {
			return nil, "", err
		}
		if err := gl.SelfTest(b, cpu.New()); err != nil {
			b.Close()
			return nil, "", err
		}
		reportGL(b)
		return b, "", nil
	}
	var why []string
	for _, api := range []gl.API{gl.GL43, gl.GLES31} {
		b, err := openGL(api, cfg)
		if err == nil && b.Info().Software() {
			err = fmt.Errorf("%s is a software renderer, slower than the CPU backend (compute.backend: %s uses it anyway)",
				b.Info().Renderer, map[gl.API]string{gl.GL43: "gl", gl.GLES31: "gles"}[api])
			b.Close()
			b = nil
		}
		if err == nil {
			if err = gl.SelfTest(b, cpu.New()); err == nil {
				reportGL(b)
				return b, "", nil
			}
			b.Close()
		}
		why = append(why, fmt.Sprintf("%v: %v", api, err))
	}
	notGL = strings.Join(why, "; ")
	fmt.Fprintf(os.Stderr, "compute.backend auto: using the CPU (%s)\n", notGL)
	return cpu.New(), notGL, nil
}

// openGL opens a GL backend with the configuration's settings.
func openGL(api gl.API, cfg *config.Config) (*gl.Backend, error) {
	b, err := gl.New(api)
	if err == nil {
		b.FenceTimeout = cfg.Compute.GLFenceTimeout
	}
	return b, err
}

func reportGL(b *gl.Backend) {
	in := b.Info()
	fmt.Fprintf(os.Stderr, "GL backend: %s via EGL %s platform, %s, %s, GLSL %s\n", in.API, in.Platform, in.Renderer, in.Version, in.GLSL)
}
