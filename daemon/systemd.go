package daemon

import (
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// SystemdNotifier returns the sd_notify sender (a no-op outside systemd:
// go-systemd sends nothing when NOTIFY_SOCKET is unset) and the watchdog
// interval systemd asks for (0 when WatchdogSec is off).
func SystemdNotifier() (notify func(state string), watchdog time.Duration) {
	wd, _ := sd.SdWatchdogEnabled(false)
	return func(state string) { sd.SdNotify(false, state) }, wd
}
