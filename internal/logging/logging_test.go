package logging

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// Under journald every line carries its syslog priority, so that
// `journalctl -p warning` keeps warnings and errors only; elsewhere lines
// carry the time and the level.
func TestPrioritiesForJournald(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, true)
	l.Infof("serving on %s", "/run/swavd/swavd.sock")
	l.Warnf("capture: %d corrupt frames skipped", 3)
	l.Errorf("checkpoint failed:\n%s", "disk full")
	want := "<6>serving on /run/swavd/swavd.sock\n<4>capture: 3 corrupt frames skipped\n<3>checkpoint failed:\n<3>disk full\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	New(&b, false).Warnf("retrying")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARN retrying\n$`).MatchString(b.String()) {
		t.Fatalf("outside journald: %q", b.String())
	}
	var lines []string
	Printf(func(f string, a ...any) { lines = append(lines, strings.TrimSpace(f+" "+a[0].(string))) }).Errorf("x=%d", 1)
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "ERROR x=1") {
		t.Fatalf("Printf: %q", lines)
	}
	Logger{}.Errorf("the zero Logger discards: %v", "no panic")
}
