// Package config loads swavd's configuration with spf13/viper: a named
// preset supplies every key's default, then a YAML file, SWAVD_ environment
// variables and command-line flags override it, in that order. Unknown keys
// and out-of-range values are rejected with a message naming the key.
package config

import (
	"bytes"
	"embed"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/swavd/swavd/augment"
	"github.com/swavd/swavd/model"
)

//go:embed presets/*.yaml
var presetFS embed.FS

//go:embed defaults.yaml
var defaultsYAML []byte

// DefaultPreset is used when no preset is named.
const DefaultPreset = "edge-small"

// Config is the whole configuration.
type Config struct {
	Preset string `mapstructure:"preset"`
	Seed   uint64 `mapstructure:"seed"`
	Input  struct {
		Size     int `mapstructure:"size"`
		Channels int `mapstructure:"channels"`
	} `mapstructure:"input"`
	Model   model.Arch    `mapstructure:"model"`
	Views   augment.Views `mapstructure:"views"`
	SwAV    model.SwAV    `mapstructure:"swav"`
	Optim   model.Optim   `mapstructure:"optim"`
	Train   Train         `mapstructure:"train"`
	Compute struct {
		Backend        string        `mapstructure:"backend"`
		GLFenceTimeout time.Duration `mapstructure:"gl_fence_timeout"`
	} `mapstructure:"compute"`
	Daemon Daemon `mapstructure:"daemon"`
	Fleet  Fleet  `mapstructure:"fleet"`
}

// Fleet configures the daemon's link to a fleet server (off while URL is
// empty).
type Fleet struct {
	URL            string        `mapstructure:"url"`
	DeviceID       string        `mapstructure:"device_id"`
	CA             string        `mapstructure:"ca"`
	Cert           string        `mapstructure:"cert"`
	Key            string        `mapstructure:"key"`
	Share          string        `mapstructure:"share"`
	ShareExemplars bool          `mapstructure:"share_exemplars"`
	Base           bool          `mapstructure:"base"`
	Adapt          string        `mapstructure:"adapt"`
	AnnounceEvery  time.Duration `mapstructure:"announce_every"`
	SnapshotEvery  time.Duration `mapstructure:"snapshot_every"`
}

// Daemon configures `swavd run`. LiveKeys lists those a SIGHUP applies
// without a restart.
type Daemon struct {
	Source             string        `mapstructure:"source"`
	FPS                float64       `mapstructure:"fps"`
	CameraWidth        int           `mapstructure:"camera_width"`
	CameraHeight       int           `mapstructure:"camera_height"`
	CameraTimeout      time.Duration `mapstructure:"camera_timeout"`
	Socket             string        `mapstructure:"socket"`
	SocketGroup        string        `mapstructure:"socket_group"`
	StateDir           string        `mapstructure:"state_dir"`
	RingSize           int           `mapstructure:"ring_size"`
	ReplaySize         int           `mapstructure:"replay_size"`
	ReplayRecent       float64       `mapstructure:"replay_recent"`
	MinReplay          int           `mapstructure:"min_replay"`
	Batch              int           `mapstructure:"batch"`
	DutyCycle          float64       `mapstructure:"duty_cycle"`
	PublishEvery       int           `mapstructure:"publish_every"`
	CheckpointSteps    int           `mapstructure:"checkpoint_steps"`
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	KeepCheckpoints    int           `mapstructure:"keep_checkpoints"`
	Exemplars          int           `mapstructure:"exemplars"`
	RecentWindow       int           `mapstructure:"recent_window"`
	MaxRequestBytes    int64         `mapstructure:"max_request_bytes"`
	MaxUploadPixels    int           `mapstructure:"max_upload_pixels"`
	MaxConnections     int           `mapstructure:"max_connections"`
	ReadTimeout        time.Duration `mapstructure:"read_timeout"`
	IdleTimeout        time.Duration `mapstructure:"idle_timeout"`
	MetricsListen      string        `mapstructure:"metrics_listen"`
	MemoryLimitMiB     int           `mapstructure:"memory_limit_mib"`
}

// ForDaemon is the configuration the daemon trains with: daemon.batch in
// place of train.batch.
func (c *Config) ForDaemon() *Config {
	d := *c
	d.Train.Batch = c.Daemon.Batch
	return &d
}

// LiveKeys are the daemon keys a reload (SIGHUP) applies to a running daemon.
var LiveKeys = []string{"daemon.duty_cycle", "daemon.publish_every", "daemon.checkpoint_steps",
	"daemon.checkpoint_interval", "daemon.keep_checkpoints"}

// Train configures the train command.
type Train struct {
	Batch           int    `mapstructure:"batch"`
	Steps           int    `mapstructure:"steps"`
	LogEvery        int    `mapstructure:"log_every"`
	CheckpointEvery int    `mapstructure:"checkpoint_every"`
	Source          string `mapstructure:"source"`
}

// Presets lists the preset names.
func Presets() []string {
	ents, _ := presetFS.ReadDir("presets")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// PresetYAML returns a preset's YAML text.
func PresetYAML(name string) ([]byte, error) {
	b, err := presetFS.ReadFile(path.Join("presets", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("config: unknown preset %q (have %s)", name, strings.Join(Presets(), ", "))
	}
	return b, nil
}

// Options say where configuration comes from besides the preset.
type Options struct {
	File string // YAML file; empty for none
	// Flags maps config keys to the flags that set them; only flags the
	// user actually set override.
	Flags map[string]*pflag.Flag
	// Environ is the environment to read SWAVD_ variables from (os.Environ()).
	Environ []string
	// Preset overrides the preset key from every other source when set.
	Preset string
}

const envPrefix = "SWAVD_"

func envKey(key string) string { return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")) }

// Load builds the configuration.
func Load(o Options) (*Config, error) {
	v := viper.New()
	var file *viper.Viper
	if o.File != "" {
		file = viper.New()
		file.SetConfigFile(o.File)
		file.SetConfigType("yaml")
		if err := file.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: %s: %w", o.File, err)
		}
	}
	env := map[string]string{}
	for _, kv := range o.Environ {
		if k, val, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = val
		}
	}
	// The preset is chosen first, by the same precedence as any key.
	preset := DefaultPreset
	if file != nil && file.IsSet("preset") {
		preset = file.GetString("preset")
	}
	if val, ok := env[envKey("preset")]; ok {
		preset = val
	}
	if f := o.Flags["preset"]; f != nil && f.Changed {
		preset = f.Value.String()
	}
	if o.Preset != "" {
		preset = o.Preset
	}
	text, err := PresetYAML(preset)
	if err != nil {
		return nil, err
	}
	base := viper.New()
	base.SetConfigType("yaml")
	if err := base.ReadConfig(bytes.NewReader(defaultsYAML)); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	if err := base.MergeConfig(bytes.NewReader(text)); err != nil {
		return nil, fmt.Errorf("config: preset %s: %w", preset, err)
	}
	known := map[string]bool{"preset": true}
	for _, k := range base.AllKeys() {
		known[k] = true
		v.SetDefault(k, base.Get(k))
	}
	v.SetDefault("preset", preset)
	var unknown []error // every unknown key, from every source, reported at once
	if file != nil {
		for _, k := range file.AllKeys() {
			if !known[k] {
				unknown = append(unknown, fmt.Errorf("%s: unknown key %q", o.File, k))
				continue
			}
			v.Set(k, file.Get(k))
		}
	}
	// SWAVD_ variables that belong to other parts, not to the configuration:
	// swavctl's socket and the tests' reference data, often exported in the
	// same shell that starts swavd.
	notConfig := map[string]bool{"SWAVD_SOCKET": true, "SWAVD_TESTDATA": true}
	envNames := map[string]string{}
	for k := range known {
		envNames[envKey(k)] = k
	}
	for name, val := range env {
		k, ok := envNames[name]
		if !ok && notConfig[name] {
			continue
		}
		if !ok {
			unknown = append(unknown, fmt.Errorf("environment variable %s names no config key", name))
			continue
		}
		v.Set(k, val)
	}
	for k, f := range o.Flags {
		if !known[k] {
			unknown = append(unknown, fmt.Errorf("flag --%s names unknown key %q", f.Name, k))
			continue
		}
		if f.Changed {
			v.Set(k, f.Value.String())
		}
	}
	v.Set("preset", preset)
	var c Config
	dec := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		splitLists,
	))
	if err := v.Unmarshal(&c, dec, func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true }); err != nil {
		return nil, joinErrors(append(unknown, err))
	}
	// Unknown keys and values out of range, all in one message.
	if err := joinErrors(append(unknown, c.problems()...)); err != nil {
		return nil, err
	}
	return &c, nil
}

// splitLists lets environment variables and flags give lists and arrays
// as "a,b,c" (brackets optional), for any element type.
func splitLists(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || (to.Kind() != reflect.Slice && to.Kind() != reflect.Array) {
		return data, nil
	}
	s := strings.Trim(strings.TrimSpace(data.(string)), "[]")
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}
