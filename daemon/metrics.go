package daemon

import (
	"fmt"
	"net/http"
	"strings"
)

// handleMetrics writes the Prometheus text exposition format.
func (d *Daemon) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	s := d.Status()
	var b strings.Builder
	metric := func(name, typ, help string, v float64) {
		fmt.Fprintf(&b, "# HELP swavd_%s %s\n# TYPE swavd_%s %s\nswavd_%s %g\n", name, help, name, typ, name, v)
	}
	up := 0.0
	if s.Camera.State == "streaming" {
		up = 1
	}
	metric("uptime_seconds", "gauge", "Seconds since the daemon started.", s.UptimeS)
	metric("camera_up", "gauge", "1 while the frame source streams.", up)
	metric("camera_reconnects_total", "counter", "Times the camera was reopened.", float64(s.Camera.Reconnects))
	metric("frames_in_total", "counter", "Frames captured.", float64(s.Camera.FramesIn))
	metric("frames_corrupt_total", "counter", "Frames that could not be decoded or were malformed.", float64(s.Camera.Corrupt))
	metric("frames_dropped_total", "counter", "Frames dropped because the assigner fell behind.", float64(s.Camera.Dropped))
	metric("frames_assigned_total", "counter", "Frames given a cluster.", float64(s.Camera.Assigned))
	metric("train_step", "gauge", "Training steps taken.", float64(s.Training.Step))
	metric("train_loss", "gauge", "SwAV loss of the last step.", s.Training.Loss)
	metric("train_learning_rate", "gauge", "Learning rate of the last step.", s.Training.LR)
	metric("train_samples_per_second", "gauge", "Training throughput (moving average).", s.Training.SamplesPS)
	metric("train_discarded_steps_total", "counter", "Steps undone because the loss was not finite.", float64(s.Training.Discarded))
	metric("replay_frames", "gauge", "Frames in the replay buffer.", float64(s.Training.Replay))
	metric("clusters_used", "gauge", "Clusters that have been assigned a frame.", float64(s.Clusters.Used))
	metric("cluster_entropy_nats", "gauge", "Entropy of the recent cluster usage.", s.Clusters.RecentEntropy)
	metric("checkpoint_failures_total", "counter", "Checkpoints that could not be written.", float64(d.ckptFails.Load()))
	if s.LastCheckpoint != nil {
		metric("checkpoint_last_step", "gauge", "Step of the last checkpoint written.", float64(s.LastCheckpoint.Step))
	}
	metric("events_subscribers", "gauge", "Open /v1/events streams.", float64(s.Events.Subscribers))
	metric("events_lost_total", "counter", "Assignment events lost to event-stream readers too slow to keep up.", float64(s.Events.Lost))
	if c := d.conns; c != nil {
		metric("api_connections", "gauge", "Open API connections.", float64(c.active.Load()))
		metric("api_connections_refused_total", "counter", "API connections closed at once: over daemon.max_connections.", float64(c.refused.Load()))
	}
	fl := s.Fleet
	connected := 0.0
	if fl.State == "connected" {
		connected = 1
	}
	metric("fleet_connected", "gauge", "1 while the fleet link is connected.", connected)
	metric("fleet_pulls_total", "counter", "Pull requests the fleet made of this device.", float64(fl.Pulls))
	metric("fleet_pulls_unchanged_total", "counter", "Pulls answered unchanged (no snapshot sent).", float64(fl.Unchanged))
	metric("fleet_bytes_sent_total", "counter", "Snapshot bytes sent to the fleet.", float64(fl.BytesSent))
	if q := d.lat.quantiles(0.5, 0.9, 0.99); q != nil {
		fmt.Fprintf(&b, "# HELP swavd_assign_latency_seconds Capture-to-assignment latency of the last frames.\n# TYPE swavd_assign_latency_seconds summary\n")
		for i, l := range []string{"0.5", "0.9", "0.99"} {
			fmt.Fprintf(&b, "swavd_assign_latency_seconds{quantile=%q} %g\n", l, q[i].Seconds())
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, err := w.Write([]byte(b.String()))
	return err
}
