package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestShippedConfigLoads(t *testing.T) {
	c, err := loadServeConfig("../../systemd/swav-fleet.yaml", pflag.NewFlagSet("x", pflag.ContinueOnError))
	if err != nil {
		t.Fatal(err)
	}
	if c.PullInterval != 10*time.Minute || c.History != 20 || c.NATSListen != "0.0.0.0:4222" || c.Codebook.Clusters != 64 || c.Codebook.MinCount != 10 {
		t.Fatalf("%+v", c)
	}
}

func TestConfigErrorsAllAtOnceAndUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("pull_interval: 10ms\nhistory: 0\nnats_url: nats://plain:4222\n"), 0o644)
	_, err := loadServeConfig(bad, pflag.NewFlagSet("x", pflag.ContinueOnError))
	for _, want := range []string{"3 bad values", "pull_interval", "history", "nats_url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v lacks %q", err, want)
		}
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("pul_interval: 5m\n"), 0o644)
	if _, err := loadServeConfig(unknown, pflag.NewFlagSet("x", pflag.ContinueOnError)); err == nil || !strings.Contains(err.Error(), `unknown key "pul_interval"`) {
		t.Fatalf("unknown key: %v", err)
	}
	t.Setenv("SWAV_FLEET_CODEBOOK_MIN_COUNT", "25")
	if c, err := loadServeConfig("", pflag.NewFlagSet("x", pflag.ContinueOnError)); err != nil || c.Codebook.MinCount != 25 {
		t.Fatalf("a nested key from the environment: %v %+v", err, c)
	}
	t.Setenv("SWAV_FLEET_PULL_INTERVL", "5m")
	if _, err := loadServeConfig("", pflag.NewFlagSet("x", pflag.ContinueOnError)); err == nil || !strings.Contains(err.Error(), "SWAV_FLEET_PULL_INTERVL") {
		t.Fatalf("unknown variable: %v", err)
	}
}
