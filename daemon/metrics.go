package daemon

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swavd/swavd/api"
)

// metrics is the daemon's Prometheus registry: the daemon's own numbers,
// read from Status once per scrape; the capture-to-assignment latency, a
// histogram observed per frame; and the process and Go collectors (RSS,
// descriptors, GC).
type metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram
	handler http.Handler
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "swavd_assign_latency_seconds",
		Help: "Time from a frame's capture to its assignment.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.reg.MustRegister(m.latency, &statusCollector{d: d}, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

func (m *metrics) observeLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }

// statusMetric is one number of the daemon's status.
type statusMetric struct {
	name, help string
	kind       prometheus.ValueType
	value      func(s *api.Status, d *Daemon) (float64, bool) // false: absent now
}

func gauge(name, help string, f func(s *api.Status) float64) statusMetric {
	return statusMetric{name, help, prometheus.GaugeValue, func(s *api.Status, _ *Daemon) (float64, bool) { return f(s), true }}
}

func counter(name, help string, f func(s *api.Status) uint64) statusMetric {
	return statusMetric{name, help, prometheus.CounterValue, func(s *api.Status, _ *Daemon) (float64, bool) { return float64(f(s)), true }}
}

func boolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var statusMetrics = []statusMetric{
	gauge("uptime_seconds", "Seconds since the daemon started.", func(s *api.Status) float64 { return s.UptimeS }),
	gauge("camera_up", "1 while the frame source streams.", func(s *api.Status) float64 { return boolean(s.Camera.State == "streaming") }),
	counter("camera_reconnects_total", "Times the camera was reopened.", func(s *api.Status) uint64 { return s.Camera.Reconnects }),
	counter("frames_in_total", "Frames captured.", func(s *api.Status) uint64 { return s.Camera.FramesIn }),
	counter("frames_corrupt_total", "Frames that could not be decoded or were malformed.", func(s *api.Status) uint64 { return s.Camera.Corrupt }),
	counter("frames_dropped_total", "Frames dropped because the assigner fell behind.", func(s *api.Status) uint64 { return s.Camera.Dropped }),
	counter("frames_assigned_total", "Frames given a cluster.", func(s *api.Status) uint64 { return s.Camera.Assigned }),
	gauge("train_step", "Training steps taken.", func(s *api.Status) float64 { return float64(s.Training.Step) }),
	gauge("train_loss", "SwAV loss of the last step.", func(s *api.Status) float64 { return s.Training.Loss }),
	gauge("train_learning_rate", "Learning rate of the last step.", func(s *api.Status) float64 { return s.Training.LR }),
	gauge("train_samples_per_second", "Training throughput (moving average).", func(s *api.Status) float64 { return s.Training.SamplesPS }),
	counter("train_discarded_steps_total", "Steps undone because the loss was not finite.", func(s *api.Status) uint64 { return s.Training.Discarded }),
	gauge("replay_frames", "Frames in the replay buffer.", func(s *api.Status) float64 { return float64(s.Training.Replay) }),
	gauge("clusters_used", "Clusters that have been assigned a frame.", func(s *api.Status) float64 { return float64(s.Clusters.Used) }),
	gauge("cluster_entropy_nats", "Entropy of the recent cluster usage.", func(s *api.Status) float64 { return s.Clusters.RecentEntropy }),
	{"checkpoint_failures_total", "Checkpoints that could not be written.", prometheus.CounterValue,
		func(_ *api.Status, d *Daemon) (float64, bool) { return float64(d.ckptFails.Load()), true }},
	{"checkpoint_last_step", "Step of the last checkpoint written or restored.", prometheus.GaugeValue,
		func(s *api.Status, _ *Daemon) (float64, bool) {
			if s.LastCheckpoint == nil {
				return 0, false
			}
			return float64(s.LastCheckpoint.Step), true
		}},
	gauge("events_subscribers", "Open /v1/events streams.", func(s *api.Status) float64 { return float64(s.Events.Subscribers) }),
	counter("events_lost_total", "Assignment events lost to event-stream readers too slow to keep up.", func(s *api.Status) uint64 { return s.Events.Lost }),
	gauge("fleet_connected", "1 while the fleet link is connected.", func(s *api.Status) float64 { return boolean(s.Fleet.State == "connected") }),
	counter("fleet_pulls_total", "Pull requests the fleet made of this device.", func(s *api.Status) uint64 { return s.Fleet.Pulls }),
	counter("fleet_pulls_unchanged_total", "Pulls answered unchanged (no snapshot sent).", func(s *api.Status) uint64 { return s.Fleet.Unchanged }),
	counter("fleet_bytes_sent_total", "Snapshot bytes sent to the fleet.", func(s *api.Status) uint64 { return s.Fleet.BytesSent }),
	{"api_connections", "Open API connections.", prometheus.GaugeValue, func(_ *api.Status, d *Daemon) (float64, bool) {
		if d.conns == nil {
			return 0, false
		}
		return float64(d.conns.active.Load()), true
	}},
	{"api_connections_refused_total", "API connections closed at once: over daemon.max_connections.", prometheus.CounterValue,
		func(_ *api.Status, d *Daemon) (float64, bool) {
			if d.conns == nil {
				return 0, false
			}
			return float64(d.conns.refused.Load()), true
		}},
}

// statusCollector reports statusMetrics from one Status per scrape.
type statusCollector struct{ d *Daemon }

func desc(m statusMetric) *prometheus.Desc {
	return prometheus.NewDesc("swavd_"+m.name, m.help, nil, nil)
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range statusMetrics {
		ch <- desc(m)
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Status()
	for _, m := range statusMetrics {
		if v, ok := m.value(&s, c.d); ok {
			ch <- prometheus.MustNewConstMetric(desc(m), m.kind, v)
		}
	}
}

func (d *Daemon) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	d.metrics.handler.ServeHTTP(w, r)
	return nil
}

// serveMetrics serves GET /metrics alone on a TCP address
// (daemon.metrics_listen), because Prometheus cannot scrape a Unix socket.
// It is off when addr is empty. A listener that cannot be opened is logged
// and the daemon goes on without it.
func (d *Daemon) serveMetrics(addr string) *http.Server {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		d.o.Log.Errorf("metrics: not served on %s: %v", addr, err)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metrics.handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	d.metricsAddr.Store(ln.Addr().String())
	d.o.Log.Infof("metrics on http://%s/metrics", ln.Addr())
	return srv
}
