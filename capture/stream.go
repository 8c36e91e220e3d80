package capture

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Source is a live stream of frames: a camera, or a replay paced at a frame
// rate. Next blocks until the next frame; it returns ctx.Err() once ctx
// ends. Corrupt frames and lost cameras are handled inside (counted,
// skipped, reconnected) and show in Status.
type Source interface {
	Next(ctx context.Context) (*Image, error)
	Status() SourceStatus
	Close() error
}

// SourceStatus is what a source reports about itself.
type SourceStatus struct {
	Spec       string `json:"spec"`
	State      string `json:"state"` // streaming, connecting, disconnected, stopped
	Format     string `json:"format,omitempty"`
	Frames     uint64 `json:"frames"`
	Corrupt    uint64 `json:"corrupt"`
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

// Source states.
const (
	StateStreaming    = "streaming"
	StateConnecting   = "connecting"
	StateDisconnected = "disconnected"
	StateStopped      = "stopped"
)

// StreamOptions configure live sources.
type StreamOptions struct {
	FPS           float64       // replay and pattern pace; the rate asked of a camera
	Width, Height int           // size asked of a camera (the nearest it offers is used)
	Timeout       time.Duration // a camera that sends nothing this long is reopened
	Limit         int           // replay: at most this many images (0: all)
	// OpenCamera opens a V4L2 device; nil means the real one (blackjack/webcam).
	OpenCamera func(path string) (Camera, error)
}

// OpenStream opens a live source from a spec: v4l2:/dev/videoN, idx:PATH,
// dir:PATH or pattern.
func OpenStream(spec string, o StreamOptions) (Source, error) {
	if o.FPS <= 0 {
		return nil, fmt.Errorf("capture: source %s: frame rate %g must be positive", spec, o.FPS)
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "v4l2":
		if arg == "" {
			return nil, fmt.Errorf("capture: source %q: want v4l2:/dev/videoN", spec)
		}
		return newV4L2(spec, arg, o), nil
	case "pattern":
		return newPaced(spec, o.FPS, &patternGen{rng: rand.New(rand.NewPCG(1, 2))}), nil
	case "idx", "dir":
		var g generator
		var err error
		if kind == "idx" {
			g, err = newIDXReplay(arg)
		} else {
			g, err = newDirReplay(arg)
		}
		if err != nil {
			return nil, err
		}
		return newPaced(spec, o.FPS, g), nil
	}
	return nil, fmt.Errorf("capture: source %q: unknown kind (want v4l2:DEVICE, idx:PATH, dir:PATH or pattern)", spec)
}

// generator makes a replay's next frame. An error wrapping ErrCorrupt
// skips one frame; any other (a file that vanished) is retried.
type generator interface{ next() (*Image, error) }

// paced serves generated frames at a fixed rate. When the consumer falls
// behind it does not burst to catch up by more than one frame.
type paced struct {
	gen      generator
	interval time.Duration
	due      time.Time
	mu       sync.Mutex
	st       SourceStatus
}

func newPaced(spec string, fps float64, g generator) *paced {
	return &paced{gen: g, interval: time.Duration(float64(time.Second) / fps), st: SourceStatus{Spec: spec, State: StateStreaming}}
}

func (p *paced) Next(ctx context.Context) (*Image, error) {
	for {
		now := time.Now()
		if p.due.IsZero() || now.Sub(p.due) > p.interval {
			p.due = now
		}
		if err := sleepCtx(ctx, time.Until(p.due)); err != nil {
			return nil, err
		}
		p.due = p.due.Add(p.interval)
		im, err := p.gen.next()
		p.mu.Lock()
		switch {
		case err == nil:
			p.st.Frames++
			p.st.State = StateStreaming
		case errors.Is(err, ErrCorrupt):
			p.st.Corrupt++
			p.st.LastError = err.Error()
		default:
			p.st.State, p.st.LastError = StateDisconnected, err.Error()
		}
		p.mu.Unlock()
		if err == nil {
			return im, nil
		}
		if !errors.Is(err, ErrCorrupt) { // back off before reopening
			if err := sleepCtx(ctx, time.Second); err != nil {
				return nil, err
			}
		}
	}
}

func (p *paced) Status() SourceStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

func (p *paced) Close() error {
	p.mu.Lock()
	p.st.State = StateStopped
	p.mu.Unlock()
	return nil
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// patternGen draws 64x64 colour test patterns of eight kinds (stripes at
// four angles, checkers, rings, a blob, a gradient) at random phases and
// colours: enough structure for a smoke test to find clusters in. The kind
// is the label.
type patternGen struct{ rng *rand.Rand }

// PatternKinds is the number of kinds the pattern source draws.
const PatternKinds = 8

func (g *patternGen) next() (*Image, error) {
	const s = 64
	kind := g.rng.IntN(PatternKinds)
	phase, period := g.rng.Float64()*6.28, 6+g.rng.Float64()*6
	var fg, bg [3]float64
	for c := range fg {
		fg[c], bg[c] = 0.6+0.4*g.rng.Float64(), 0.3*g.rng.Float64()
	}
	im := &Image{W: s, H: s, C: 3, Pix: make([]uint8, s*s*3), Label: kind}
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			v := patternValue(kind, float64(x)-s/2, float64(y)-s/2, phase, period)
			for c := 0; c < 3; c++ {
				im.Pix[(y*s+x)*3+c] = uint8(255 * (bg[c] + (fg[c]-bg[c])*v))
			}
		}
	}
	return im, nil
}

// patternValue is in [0, 1].
func patternValue(kind int, x, y, phase, period float64) float64 {
	wave := func(t float64) float64 { return 0.5 + 0.5*math.Sin(t*6.2832/period+phase) }
	switch kind {
	case 0:
		return wave(x)
	case 1:
		return wave(y)
	case 2:
		return wave((x + y) * 0.7071)
	case 3:
		return wave((x - y) * 0.7071)
	case 4:
		return float64((int(x+64+phase)/int(period) + int(y+64+phase)/int(period)) % 2)
	case 5:
		return wave(math.Sqrt(x*x + y*y))
	case 6:
		if x*x+y*y < (period*2)*(period*2) {
			return 1
		}
		return 0
	default:
		return (x + 32) / 64
	}
}
