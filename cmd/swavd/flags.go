package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/choose"
	"github.com/swavd/swavd/compute/gl"
	"github.com/swavd/swavd/config"
)

// configFlags are the flags every command shares that set config keys.
type configFlags struct {
	fs   *pflag.FlagSet
	file *string
	keys map[string]string // config key -> flag name
	// choice is the backend open chose, and why.
	choice choose.Choice
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
	if c.choice, err = openBackend(cfg); err != nil {
		return nil, nil, err
	}
	return cfg, c.choice.Backend, nil
}

func (c *configFlags) load(preset string) (*config.Config, error) {
	m := map[string]*pflag.Flag{}
	for k, f := range c.keys {
		m[k] = c.fs.Lookup(f)
	}
	return config.Load(config.Options{File: *c.file, Flags: m, Environ: os.Environ(), Preset: preset})
}

// openBackend opens the backend cfg names (package choose) and says on
// stderr which, and why auto did not take GL when it did not.
func openBackend(cfg *config.Config) (choose.Choice, error) {
	c, err := choose.Open(cfg)
	if err != nil {
		return c, err
	}
	if g, ok := c.Backend.(*gl.Backend); ok {
		reportGL(g)
	} else if c.NotGL != "" {
		fmt.Fprintf(os.Stderr, "compute.backend auto: using the CPU (%s)\n", c.NotGL)
	}
	return c, nil
}

func reportGL(b *gl.Backend) {
	in := b.Info()
	fmt.Fprintf(os.Stderr, "GL backend: %s via EGL %s platform, %s, %s, GLSL %s\n", in.API, in.Platform, in.Renderer, in.Version, in.GLSL)
}
