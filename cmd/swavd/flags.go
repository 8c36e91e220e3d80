package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
)

// configFlags are the flags every command shares that set config keys.
type configFlags struct {
	fs   *pflag.FlagSet
	file *string
	keys map[string]string // config key -> flag name
}

func newConfigFlags(name string) *configFlags {
	fs := pflag.NewFlagSet("swavd "+name, pflag.ContinueOnError)
	c := &configFlags{fs: fs, keys: map[string]string{}}
	c.file = fs.String("config", "", "YAML configuration file")
	c.key("preset", "preset", "", "named preset: "+fmt.Sprint(config.Presets()))
	c.key("compute.backend", "backend", "", "compute backend: cpu (auto, gl and gles arrive with the GL backend)")
	return c
}

// key adds a string flag that sets a config key when given.
func (c *configFlags) key(key, flag, def, usage string) {
	c.fs.String(flag, def, usage)
	c.keys[key] = flag
}

func (c *configFlags) load(preset string) (*config.Config, error) {
	m := map[string]*pflag.Flag{}
	for k, f := range c.keys {
		m[k] = c.fs.Lookup(f)
	}
	return config.Load(config.Options{File: *c.file, Flags: m, Environ: config.Environ(), Preset: preset})
}

// newBackend opens the configured backend.
func newBackend(cfg *config.Config) (compute.Backend, error) {
	switch cfg.Compute.Backend {
	case "cpu", "auto":
		return cpu.New(), nil
	}
	return nil, fmt.Errorf("compute.backend %q is not built into this swavd yet (use cpu)", cfg.Compute.Backend)
}
