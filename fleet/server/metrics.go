package server

import (
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the fleet server's Prometheus metrics, with the process and
// Go collectors.
type metrics struct {
	reg           *prometheus.Registry
	pulls         *prometheus.CounterVec
	bytes         prometheus.Counter
	stored        prometheus.Counter
	storeFailures prometheus.Counter
	pullSeconds   prometheus.Histogram
	// roundSeconds: from a round's start until every device online had
	// been pulled (slots spread pulls over the round's first half).
	roundSeconds   prometheus.Gauge
	rounds         prometheus.Counter
	pullAllSeconds prometheus.Gauge
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.pulls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swav_fleet_pulls_total",
		Help: "Pulls by result: snapshot, unchanged, failed, rejected."}, []string{"result"})
	m.bytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "swav_fleet_snapshot_bytes_received_total",
		Help: "Snapshot bytes received from devices."})
	m.stored = prometheus.NewCounter(prometheus.CounterOpts{Name: "swav_fleet_snapshots_stored_total",
		Help: "Snapshots written to the store (a digest already stored is not written again)."})
	m.storeFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "swav_fleet_store_failures_total",
		Help: "Snapshots that could not be stored (a full disk); earlier ones are kept."})
	m.pullSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "swav_fleet_pull_seconds",
		Help: "Time of one pull, request to stored.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	m.roundSeconds = prometheus.NewGauge(prometheus.GaugeOpts{Name: "swav_fleet_round_seconds",
		Help: "Seconds from the last completed round's start until every online device had been pulled."})
	m.rounds = prometheus.NewCounter(prometheus.CounterOpts{Name: "swav_fleet_rounds_completed_total",
		Help: "Rounds in which every online device was pulled."})
	m.pullAllSeconds = prometheus.NewGauge(prometheus.GaugeOpts{Name: "swav_fleet_pull_all_seconds",
		Help: "Seconds the last pull of every online device (POST /v1/pull) took."})
	for _, r := range []string{ResultSnapshot, ResultUnchanged, ResultFailed, ResultRejected} {
		m.pulls.WithLabelValues(r)
	}
	online := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "swav_fleet_devices_online", Help: "Devices online now."},
		func() float64 {
			n, now := 0, time.Now()
			for _, d := range s.store.Devices() {
				if d.Online(now) {
					n++
				}
			}
			return float64(n)
		})
	known := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "swav_fleet_devices", Help: "Devices known."},
		func() float64 { return float64(len(s.store.Devices())) })
	refused := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "swav_fleet_connections_refused_total",
		Help: "NATS connections refused after TLS: a revoked certificate, an unknown role, an unusable CRL (TLS itself refuses foreign or missing certificates)."},
		func() float64 {
			if s.auth == nil {
				return 0
			}
			return float64(s.auth.refused.Load())
		})
	varz := func(f func(v *natsserver.Varz) float64) func() float64 {
		return func() float64 {
			if s.ns == nil {
				return 0
			}
			v, err := s.ns.Varz(nil)
			if err != nil {
				return 0
			}
			return f(v)
		}
	}
	natsIn := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "swav_fleet_nats_in_bytes_total",
		Help: "Bytes the embedded NATS server received (0 against a cluster)."}, varz(func(v *natsserver.Varz) float64 { return float64(v.InBytes) }))
	natsOut := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "swav_fleet_nats_out_bytes_total",
		Help: "Bytes the embedded NATS server sent (0 against a cluster)."}, varz(func(v *natsserver.Varz) float64 { return float64(v.OutBytes) }))
	natsConns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "swav_fleet_nats_connections",
		Help: "Client connections to the embedded NATS server."}, varz(func(v *natsserver.Varz) float64 { return float64(v.Connections) }))
	m.reg.MustRegister(natsIn, natsOut, natsConns)
	m.reg.MustRegister(m.pulls, m.bytes, m.stored, m.storeFailures, m.pullSeconds, m.roundSeconds, m.rounds, m.pullAllSeconds, online, known, refused,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return m
}

func (m *metrics) pulled(r PullResult) {
	m.pulls.WithLabelValues(r.Result).Inc()
	if r.Result == ResultSnapshot {
		m.bytes.Add(float64(r.Bytes))
	}
	if r.Stored {
		m.stored.Inc()
	}
	m.pullSeconds.Observe(r.TookMS / 1e3)
}
