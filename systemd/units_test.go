// Package systemd holds swavd's unit files; this test checks them with
// systemd-analyze verify (Debian's systemd package, installed by make deps).
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (make deps installs Debian's systemd package): %v", err)
	}
	dir := t.TempDir()
	// verify checks that ExecStart exists: point it at the binaries just built.
	for _, cmd := range []string{"swavd", "swav-fleet"} {
		bin := filepath.Join(dir, cmd)
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/"+cmd).CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	units := []string{"swavd.socket", "swavd.service", "swav-fleet.service"}
	var paths []string
	for _, name := range units {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/", dir+"/")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Join(dir, name))
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// A unit with a mistake must fail, or the check above proves nothing.
	bad := filepath.Join(dir, "bad.service")
	os.WriteFile(bad, []byte("[Service]\nType=notify\nExecStart=relative/path\n"), 0o644)
	if out, err := exec.Command(analyze, "verify", bad).CombinedOutput(); err == nil {
		t.Fatalf("systemd-analyze verify accepted a broken unit:\n%s", out)
	}
}

// The service must keep the settings the daemon relies on.
func TestServiceSettings(t *testing.T) {
	b, err := os.ReadFile("swavd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=swavd", "RuntimeDirectory=swavd",
		"ConfigurationDirectory=swavd", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"DeviceAllow=char-video4linux", "DeviceAllow=/dev/nvmap", "--socket fd://", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("swavd.service lacks %q", want)
		}
	}
}

func TestFleetServiceSettings(t *testing.T) {
	b, err := os.ReadFile("swav-fleet.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=swav-fleet", "StateDirectory=swav-fleet",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "PrivateDevices=yes", "--config /etc/swav-fleet/swav-fleet.yaml"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("swav-fleet.service lacks %q", want)
		}
	}
}
