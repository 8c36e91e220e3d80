package config

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DaemonMemory estimates what `swavd run` holds: the replay buffer (exact:
// daemon.replay_size frames of input.size² x input.channels bytes) and the
// training step at daemon.batch (an estimate, model.Arch.TrainingBytes).
func (c *Config) DaemonMemory() (replay, training int64) {
	replay = int64(c.Daemon.ReplaySize) * int64(c.Input.Size) * int64(c.Input.Size) * int64(c.Input.Channels)
	var crops []int
	for i := 0; i < c.Views.Global.Count; i++ {
		crops = append(crops, c.Views.Global.Size)
	}
	for i := 0; i < c.Views.Local.Count; i++ {
		crops = append(crops, c.Views.Local.Size)
	}
	return replay, c.Model.TrainingBytes(c.Daemon.Batch, crops)
}

// CheckDaemonMemory refuses a configuration whose replay buffer and
// training step cannot fit in machine bytes (MachineMemory), naming the
// keys that decide it: a valid configuration could otherwise panic
// allocating the replay buffer, or be killed by the OOM killer later.
func (c *Config) CheckDaemonMemory(machine int64) error {
	replay, training := c.DaemonMemory()
	if replay+training <= machine {
		return nil
	}
	const mib = 1 << 20
	return fmt.Errorf("config: the replay buffer (daemon.replay_size %d x input.size %d² x input.channels %d = %d MiB) "+
		"and training at daemon.batch %d (about %d MiB) need more than this machine's %d MiB of memory: lower daemon.replay_size, input.size or daemon.batch",
		c.Daemon.ReplaySize, c.Input.Size, c.Input.Channels, replay/mib, c.Daemon.Batch, training/mib, machine/mib)
}

// MachineMemory is MemTotal from /proc/meminfo, in bytes.
func MachineMemory() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: MemTotal %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
}
