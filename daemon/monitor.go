package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/swavd/swavd/capture"
)

// rates are frames per second over the last monitor period.
type rates struct{ in, dropped float64 }

// monitor updates the rates, sends systemd STATUS= lines and, while
// capture and training make progress, WATCHDOG=1.
func (d *Daemon) monitor(ctx context.Context) {
	period := time.Second
	if d.o.Watchdog > 0 {
		period = min(period, d.o.Watchdog/3)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	lastIn, lastDrop, lastT := d.framesIn.Load(), d.ring.Dropped(), time.Now()
	d.beat()
	petting := true
	var seen capture.SourceStatus
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			in, drop := d.framesIn.Load(), d.ring.Dropped()
			dt := now.Sub(lastT).Seconds()
			d.mu.Lock()
			d.rates = rates{in: float64(in-lastIn) / dt, dropped: float64(drop-lastDrop) / dt}
			d.mu.Unlock()
			lastIn, lastDrop, lastT = in, drop, now
			seen = d.logCapture(seen)
			s := d.Status()
			d.o.Notify(fmt.Sprintf("STATUS=step %d, loss %.4f, %.1f fps in, %s, %d/%d clusters used",
				s.Training.Step, s.Training.Loss, s.Camera.FPSIn, s.Camera.State, s.Clusters.Used, s.Clusters.K))
			if d.o.Watchdog > 0 {
				why := d.stalled(now)
				if why == "" {
					d.o.Notify("WATCHDOG=1")
				}
				if petting != (why == "") { // log changes only
					petting = why == ""
					if petting {
						d.o.Log.Infof("watchdog: progress again; petting systemd")
					} else {
						d.o.Log.Warnf("watchdog: not petting systemd: %s", why)
					}
				}
			}
		}
	}
}

// stalled says what has made no progress within the watchdog interval:
// capture (a camera that is reconnecting counts as progress: that is
// handled), or the trainer.
func (d *Daemon) stalled(now time.Time) string {
	wd := d.o.Watchdog
	st := d.src.Status().State
	if last := time.Unix(0, d.lastFrame.Load()); st == capture.StateStreaming && now.Sub(last) > wd && now.Sub(d.started) > wd {
		return fmt.Sprintf("no frame for %v", now.Sub(last).Round(time.Millisecond))
	}
	if last := time.Unix(0, d.trainerBeat.Load()); now.Sub(last) > wd {
		return fmt.Sprintf("the trainer has been silent for %v", now.Sub(last).Round(time.Millisecond))
	}
	return ""
}

// logCapture logs what changed in the source's state since seen: a camera
// gone or back, a new error (a missing device, a truncated replay), corrupt
// frames. Status shows the same; the log keeps the history.
func (d *Daemon) logCapture(seen capture.SourceStatus) capture.SourceStatus {
	st := d.src.Status()
	switch {
	case st.State != seen.State && st.State == capture.StateStreaming && seen.State != "":
		d.o.Log.Infof("capture: %s: streaming again", st.Spec)
	case st.LastError != "" && (st.LastError != seen.LastError || st.State != seen.State):
		d.o.Log.Warnf("capture: %s: %s: %s", st.Spec, st.State, st.LastError)
	}
	if st.Corrupt > seen.Corrupt && seen.State != "" {
		d.o.Log.Warnf("capture: %s: %d corrupt frames skipped (%d in all)", st.Spec, st.Corrupt-seen.Corrupt, st.Corrupt)
	}
	return st
}
