package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "swavd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEdgeSmallPreset(t *testing.T) {
	c, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Preset != "edge-small" || c.Model.Prototypes != 128 || c.Train.Batch != 64 || c.SwAV.Epsilon != 0.05 ||
		c.Views.Local.Count != 4 || c.Views.Global.Size != 32 || c.Views.Mean[2] != 0.5 || c.Views.Std[0] != 0.25 ||
		len(c.Model.Stages) != 3 || c.Model.Stages[2] != 128 || c.Optim.WeightDecay != 1e-5 || c.SwAV.QueueFromStep != 300 {
		t.Fatalf("edge-small decoded as %+v", c)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	file := writeYAML(t, "train:\n  batch: 32\n  steps: 10\nswav:\n  temperature: 0.2\n")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("steps", "", "")
	if err := fs.Parse([]string{"--steps", "99"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Options{
		File: file,
		// SWAVD_SOCKET (swavctl's) and SWAVD_TESTDATA (the tests') are not
		// config keys and must not stop swavd when exported.
		Environ: []string{"SWAVD_TRAIN_STEPS=50", "SWAVD_SWAV_TEMPERATURE=0.3", "HOME=/root", "SWAVD_SOCKET=/tmp/s.sock", "SWAVD_TESTDATA=/tmp"},
		Flags:   map[string]*pflag.Flag{"train.steps": fs.Lookup("steps")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Train.Batch != 32 || c.Train.Steps != 99 || c.SwAV.Temperature != 0.3 {
		t.Fatalf("batch %d steps %d temperature %v; want 32 (file), 99 (flag), 0.3 (env)", c.Train.Batch, c.Train.Steps, c.SwAV.Temperature)
	}
}

func TestRejectsWithTheKeyNamed(t *testing.T) {
	cases := []struct {
		name, file string
		env        []string
		want       []string
	}{
		{"unknown key in file", "train:\n  batchsize: 3\n", nil, []string{"train.batchsize", "unknown"}},
		{"unknown env", "", []string{"SWAVD_TRAIN_BACH=3"}, []string{"SWAVD_TRAIN_BACH"}},
		{"out of range", "swav:\n  epsilon: 0\n", nil, []string{"swav.epsilon", "allowed"}},
		{"not a number", "", []string{"SWAVD_TRAIN_BATCH=many"}, []string{"train.batch"}},
		{"bad enum", "optim:\n  name: adam\n", nil, []string{"optim.name", "sgd"}},
		{"bad fleet.adapt", "fleet:\n  url: tls://fleet:4222\n  adapt: encoder\n", nil, []string{"fleet.adapt", "prototypes"}},
		{"queue not a multiple", "swav:\n  queue_length: 100\n", nil, []string{"swav.queue_length", "multiple"}},
		{"unknown preset", "preset: huge\n", nil, []string{"huge", "edge-small"}},
		{"assign crop out of range", "swav:\n  crops_for_assign: [0, 5]\n", nil, []string{"swav.crops_for_assign[1]"}},
		{"malformed yaml", "train: [\n", nil, []string{"swavd.yaml"}},
	}
	for _, c := range cases {
		o := Options{Environ: c.env}
		if c.file != "" {
			o.File = writeYAML(t, c.file)
		}
		_, err := Load(o)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

func TestEveryPresetLoads(t *testing.T) {
	for _, p := range Presets() {
		if _, err := Load(Options{Preset: p}); err != nil {
			t.Errorf("preset %s: %v", p, err)
		}
	}
}

// The commented default config that make install puts in /etc/swavd loads.
func TestInstalledDefaultConfigLoads(t *testing.T) {
	c, err := Load(Options{File: "../systemd/swavd.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Preset != "camera" || c.Daemon.Source != "v4l2:/dev/video0" || c.Input.Channels != 3 {
		t.Fatalf("got preset %s source %s channels %d", c.Preset, c.Daemon.Source, c.Input.Channels)
	}
}

// Every unknown key and every value out of range, from every source, in
// one message (before, only the first).
func TestEveryProblemReportedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("daemon:\n  fps: 0\n  batch: 1\n  ring_sise: 8\nmodel:\n  prototypes: 1\n"), 0o644)
	_, err := Load(Options{File: path, Environ: []string{"SWAVD_DAEMON_FSP=3"}})
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{"5 problems", `unknown key "daemon.ring_sise"`, "SWAVD_DAEMON_FSP names no config key",
		"daemon.fps = 0", "daemon.batch = 1", "model.prototypes = 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A configuration inside every range can still not fit: the replay buffer
// below is 768 TiB. It is refused with the keys named, where it used to
// panic allocating; the presets' defaults fit in 1 GiB.
func TestDaemonMemoryIsChecked(t *testing.T) {
	cfg, err := Load(Options{Preset: "edge-small", Environ: []string{"SWAVD_INPUT_SIZE=4096", "SWAVD_INPUT_CHANNELS=3", "SWAVD_DAEMON_REPLAY_SIZE=16777216"}})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckDaemonMemory(24 << 30)
	if err == nil {
		t.Fatal("a 768 TiB replay buffer passed")
	}
	for _, key := range []string{"daemon.replay_size", "input.size", "input.channels", "24576 MiB"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%q does not name %s", err, key)
		}
	}
	for _, p := range Presets() {
		cfg, err := Load(Options{Preset: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.CheckDaemonMemory(1 << 30); err != nil {
			t.Errorf("preset %s: %v", p, err)
		}
	}
	if m, err := MachineMemory(); err != nil || m < 64<<20 {
		t.Errorf("MachineMemory() = %d, %v", m, err)
	}
}
