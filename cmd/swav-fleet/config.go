package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/swavd/swavd/fleet/server"
)

// serveConfig is swav-fleet serve's configuration: defaults, then a YAML
// file, SWAV_FLEET_ variables and flags, in that order. Unknown keys are
// refused, every bad value is reported at once.
type serveConfig struct {
	StateDir         string        `mapstructure:"state_dir"`
	Certs            string        `mapstructure:"certs"`
	NATSListen       string        `mapstructure:"nats_listen"`
	NATSURL          string        `mapstructure:"nats_url"`
	HTTP             string        `mapstructure:"http"`
	Replicas         int           `mapstructure:"replicas"`
	PullInterval     time.Duration `mapstructure:"pull_interval"`
	PullTimeout      time.Duration `mapstructure:"pull_timeout"`
	PullConcurrency  int           `mapstructure:"pull_concurrency"`
	History          int           `mapstructure:"history"`
	MaxSnapshotBytes int           `mapstructure:"max_snapshot_bytes"`
	Codebook         struct {
		Clusters int   `mapstructure:"clusters"`
		MinCount int64 `mapstructure:"min_count"`
	} `mapstructure:"codebook"`
}

var serveDefaults = map[string]any{
	"state_dir": "/var/lib/swav-fleet", "certs": "/etc/swav-fleet/certs", "nats_listen": "0.0.0.0:4222", "nats_url": "",
	"http": "127.0.0.1:8470", "replicas": 0, "pull_interval": "10m", "pull_timeout": "30s", "pull_concurrency": 32,
	"history": 20, "max_snapshot_bytes": 8 << 20, "codebook.clusters": 64, "codebook.min_count": 10,
}

// envName is a key's variable: SWAV_FLEET_PULL_INTERVAL, SWAV_FLEET_CODEBOOK_MIN_COUNT.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

const envPrefix = "SWAV_FLEET_"

func loadServeConfig(file string, flags *pflag.FlagSet) (*serveConfig, error) {
	v := viper.New()
	for k, val := range serveDefaults {
		v.SetDefault(k, val)
	}
	if file != "" {
		f := viper.New()
		f.SetConfigFile(file)
		f.SetConfigType("yaml")
		if err := f.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: %s: %w", file, err)
		}
		for _, k := range f.AllKeys() {
			if _, ok := serveDefaults[k]; !ok {
				return nil, fmt.Errorf("config: %s: unknown key %q", file, k)
			}
			v.Set(k, f.Get(k))
		}
	}
	keyOf := map[string]string{}
	for k := range serveDefaults {
		keyOf[envName(k)] = k
	}
	for _, kv := range os.Environ() {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || name == envPrefix+"SERVER" {
			continue
		}
		k, ok := keyOf[name]
		if !ok {
			return nil, fmt.Errorf("config: environment variable %s names no config key", name)
		}
		v.Set(k, val)
	}
	flags.VisitAll(func(f *pflag.Flag) {
		if k := strings.ReplaceAll(f.Name, "-", "_"); f.Changed {
			if _, ok := serveDefaults[k]; ok {
				v.Set(k, f.Value.String())
			}
		}
	})
	var c serveConfig
	if err := v.Unmarshal(&c, viper.DecodeHook(mapstructure.StringToTimeDurationHookFunc()),
		func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true }); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, c.validate()
}

func (c *serveConfig) validate() error {
	var bad []string
	check := func(ok bool, key string, val any, allowed string) {
		if !ok {
			bad = append(bad, fmt.Sprintf("%s = %v (allowed: %s)", key, val, allowed))
		}
	}
	check(c.StateDir != "", "state_dir", `""`, "a directory")
	check(c.Certs != "", "certs", `""`, "a directory")
	check(c.NATSURL == "" || strings.HasPrefix(c.NATSURL, "tls://"), "nats_url", c.NATSURL, "tls://HOST:PORT[,tls://...] or empty to embed NATS")
	check(c.Replicas >= 0 && c.Replicas <= 5, "replicas", c.Replicas, "0..5 (0: 1 embedded, 3 on a cluster)")
	check(c.PullInterval >= time.Second && c.PullInterval <= 7*24*time.Hour, "pull_interval", c.PullInterval, "1s..168h")
	check(c.PullTimeout >= 100*time.Millisecond && c.PullTimeout <= time.Hour, "pull_timeout", c.PullTimeout, "100ms..1h")
	check(c.PullConcurrency >= 1 && c.PullConcurrency <= 4096, "pull_concurrency", c.PullConcurrency, "1..4096")
	check(c.History >= 1 && c.History <= 10000, "history", c.History, "1..10000")
	check(c.MaxSnapshotBytes >= 4096 && c.MaxSnapshotBytes <= 64<<20, "max_snapshot_bytes", c.MaxSnapshotBytes, "4096..67108864")
	check(c.Codebook.Clusters >= 1 && c.Codebook.Clusters <= 65536, "codebook.clusters", c.Codebook.Clusters, "1..65536")
	check(c.Codebook.MinCount >= 0, "codebook.min_count", c.Codebook.MinCount, "0 or more")
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("config: %d bad values:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	return nil
}

func (c *serveConfig) options() server.Options {
	o := server.Options{StateDir: c.StateDir, Certs: c.Certs, NATSListen: c.NATSListen, NATSURL: c.NATSURL, Replicas: c.Replicas,
		PullInterval: c.PullInterval, PullTimeout: c.PullTimeout, PullConcurrency: c.PullConcurrency, History: c.History,
		MaxSnapshotBytes: c.MaxSnapshotBytes, CodebookClusters: c.Codebook.Clusters, CodebookMinCount: c.Codebook.MinCount}
	if o.Replicas == 0 && o.NATSURL != "" {
		o.Replicas = 3
	}
	return o
}
