package daemon

import (
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/swavd/swavd/internal/logging"
)

// SystemdNotifier returns the sd_notify sender (a no-op outside systemd:
// go-systemd sends nothing when NOTIFY_SOCKET is unset) and the watchdog
// interval systemd asks for (0 when WatchdogSec is off). A message that
// cannot be sent is logged: systemd would otherwise time the start out or
// kill a healthy daemon for a silent watchdog without a word in the log.
// The first failure is logged, then every 100th, not once per second.
func SystemdNotifier(log logging.Logger) (notify func(state string), watchdog time.Duration) {
	wd, _ := sd.SdWatchdogEnabled(false)
	var failed atomic.Uint64
	return func(state string) {
		if _, err := sd.SdNotify(false, state); err != nil {
			if n := failed.Add(1); n%100 == 1 {
				log.Errorf("systemd: notify %q failed: %v (%d failures)", state, err, n)
			}
		}
	}, wd
}
