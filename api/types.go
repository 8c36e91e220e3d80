// Package api is swavd's local API: the JSON types served under /v1 on the
// daemon's Unix socket, and a typed client for them (what swavctl uses).
// It imports nothing of the daemon, so clients stay small.
package api

import "time"

// Version is the path prefix of this API.
const Version = "/v1"

// Status is GET /v1/status.
type Status struct {
	Version   string    `json:"version"`
	Preset    string    `json:"preset"`
	StartedAt time.Time `json:"started_at"`
	UptimeS   float64   `json:"uptime_s"`
	Backend   Backend   `json:"backend"`
	Camera    Camera    `json:"camera"`
	Training  Training  `json:"training"`
	Clusters  Usage     `json:"clusters"`
	// LastCheckpoint is empty before the first one.
	LastCheckpoint *Checkpoint `json:"last_checkpoint,omitempty"`
	// CheckpointError is the last checkpoint failure, cleared by a success.
	CheckpointError string `json:"checkpoint_error,omitempty"`
	// Fleet is the link to the fleet server; State "off" when none is configured.
	Fleet FleetLink `json:"fleet"`
	// Events are the /v1/events streams.
	Events Events `json:"events"`
}

// Events are the open event streams and the assignments lost to readers
// too slow to keep up (a slow reader loses events rather than slowing the
// daemon).
type Events struct {
	Subscribers int    `json:"subscribers"`
	Lost        uint64 `json:"lost"`
}

// FleetLink is the device's link to its fleet server.
type FleetLink struct {
	State      string     `json:"state"` // off | connecting | connected | failed | closed
	URL        string     `json:"url,omitempty"`
	DeviceID   string     `json:"device_id,omitempty"`
	Server     string     `json:"server,omitempty"` // the NATS server connected to
	LastPull   *time.Time `json:"last_pull,omitempty"`
	LastDigest string     `json:"last_digest,omitempty"`
	LastResult string     `json:"last_result,omitempty"` // snapshot | unchanged | error
	LastError  string     `json:"last_error,omitempty"`
	Pulls      uint64     `json:"pulls"`
	Unchanged  uint64     `json:"unchanged"`
	BytesSent  uint64     `json:"bytes_sent"`
	Reconnects uint64     `json:"reconnects"`
	// Base is the digest of the fleet base the weights started from ("" for
	// none); WaitingForBase while the device asked for the fleet's base and
	// has not loaded it; BaseError why the last base delivery was refused.
	Base           string `json:"base,omitempty"`
	WaitingForBase bool   `json:"waiting_for_base,omitempty"`
	BaseError      string `json:"base_error,omitempty"`
}

// Backend says what computes.
type Backend struct {
	Name     string `json:"name"`
	Renderer string `json:"renderer,omitempty"`
	GL       string `json:"gl_version,omitempty"`
	// Fallback says why a GL backend was given up for the CPU, if it was.
	Fallback string `json:"fallback,omitempty"`
}

// Camera is the frame source and the frames that went through it.
type Camera struct {
	Source     string  `json:"source"`
	State      string  `json:"state"`
	Format     string  `json:"format,omitempty"`
	LastError  string  `json:"last_error,omitempty"`
	Reconnects uint64  `json:"reconnects"`
	FramesIn   uint64  `json:"frames_in"`
	Corrupt    uint64  `json:"corrupt"`
	Dropped    uint64  `json:"dropped"`
	Assigned   uint64  `json:"assigned"`
	FPSIn      float64 `json:"fps_in"`
	FPSDropped float64 `json:"fps_dropped"`
}

// Training is the trainer's progress.
type Training struct {
	State      string  `json:"state"` // waiting (for replay frames), training, stopped, failed
	Step       int     `json:"step"`
	Loss       float64 `json:"loss"`
	LR         float64 `json:"lr"`
	SamplesPS  float64 `json:"samples_per_s"`
	Discarded  uint64  `json:"discarded_steps"` // non-finite losses undone
	Replay     int     `json:"replay_frames"`
	ReplayCap  int     `json:"replay_capacity"`
	DutyCycle  float64 `json:"duty_cycle"`
	LastError  string  `json:"last_error,omitempty"`
	ModelStep  int     `json:"assigner_step"` // the step whose weights assign frames
	Batch      int     `json:"batch"`
	Prototypes int     `json:"prototypes"`
	// Adapt is what training changes: all, or prototypes (a device on the
	// fleet's base keeps the base's encoder; see fleet.adapt).
	Adapt string `json:"adapt,omitempty"`
}

// Usage summarizes how frames spread over the clusters.
type Usage struct {
	K             int     `json:"k"`
	Used          int     `json:"used"`           // clusters with at least one frame
	RecentUsed    int     `json:"recent_used"`    // ... among the recent window
	Entropy       float64 `json:"entropy"`        // of the total counts, in nats
	RecentEntropy float64 `json:"recent_entropy"` // of the recent window
}

// Checkpoint is one checkpoint in the state directory.
type Checkpoint struct {
	Path  string    `json:"path"`
	Step  int       `json:"step"`
	At    time.Time `json:"at"`
	Bytes int64     `json:"bytes"`
	// Restored marks the checkpoint the daemon resumed from at start.
	Restored bool `json:"restored,omitempty"`
}

// Cluster is one prototype's statistics (GET /v1/clusters).
type Cluster struct {
	ID        int        `json:"id"`
	Total     uint64     `json:"total"`
	Recent    int        `json:"recent"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	MeanConf  float64    `json:"mean_confidence"`
	Exemplars [][]byte   `json:"exemplars,omitempty"` // PNG images, newest first (with ?exemplars=1)
}

// Clusters is GET /v1/clusters.
type Clusters struct {
	Step     int       `json:"step"`
	Clusters []Cluster `json:"clusters"`
}

// Assignment is one frame's cluster: an event on /v1/events, and the
// answer of POST /v1/assign (which adds the probabilities).
type Assignment struct {
	Seq        uint64    `json:"seq"`
	At         time.Time `json:"at"`
	Cluster    int       `json:"cluster"`
	Confidence float64   `json:"confidence"`
	LatencyMS  float64   `json:"latency_ms"` // capture to assignment
	Step       int       `json:"step"`
	Label      *int      `json:"label,omitempty"` // the replay data set's label, if any
	Probs      []float32 `json:"probabilities,omitempty"`
}

// RebaseResult is POST /v1/fleet/rebase: the checkpoint written first.
type RebaseResult struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	State      string     `json:"state"`
}

// CheckpointResult is POST /v1/checkpoint.
type CheckpointResult struct {
	Checkpoint Checkpoint `json:"checkpoint"`
}

// Error is every error body.
type Error struct {
	Error string `json:"error"`
}
