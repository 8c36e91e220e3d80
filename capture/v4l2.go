package capture

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blackjack/webcam"
)

// Camera is the part of a V4L2 device swavd uses; *webcam.Webcam has it,
// and tests put a fake device behind it.
type Camera interface {
	GetSupportedFormats() map[webcam.PixelFormat]string
	GetSupportedFrameSizes(webcam.PixelFormat) []webcam.FrameSize
	SetImageFormat(f webcam.PixelFormat, w, h uint32) (webcam.PixelFormat, uint32, uint32, error)
	SetFramerate(fps float32) error
	StartStreaming() error
	WaitForFrame(timeoutSeconds uint32) error
	ReadFrame() ([]byte, error)
	Close() error
}

func fourcc(s string) webcam.PixelFormat {
	return webcam.PixelFormat(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
}

// Pixel formats swavd decodes, in order of preference: MJPEG costs the
// USB bus least; YUYV is what every UVC camera offers.
var (
	FormatMJPEG = fourcc("MJPG")
	FormatYUYV  = fourcc("YUYV")
)

func openWebcam(path string) (Camera, error) {
	c, err := webcam.Open(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Reconnect backoff bounds.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// v4l2 reads a camera; when it fails or goes silent the device is closed
// and reopened with exponential backoff, and the state says so.
type v4l2 struct {
	path    string
	o       StreamOptions
	cam     Camera
	format  webcam.PixelFormat
	w, h    int
	backoff time.Duration
	mu      sync.Mutex
	st      SourceStatus
}

func newV4L2(spec, path string, o StreamOptions) *v4l2 {
	if o.OpenCamera == nil {
		o.OpenCamera = openWebcam
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	return &v4l2{path: path, o: o, backoff: minBackoff, st: SourceStatus{Spec: spec, State: StateConnecting}}
}

func (s *v4l2) update(fn func(st *SourceStatus)) {
	s.mu.Lock()
	fn(&s.st)
	s.mu.Unlock()
}

func (s *v4l2) Status() SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *v4l2) Close() error {
	s.disconnect(StateStopped, nil)
	return nil
}

func (s *v4l2) disconnect(state string, why error) {
	if s.cam != nil {
		s.cam.Close()
		s.cam = nil
	}
	s.update(func(st *SourceStatus) {
		st.State = state
		if why != nil {
			st.LastError = why.Error()
		}
	})
}

func (s *v4l2) Next(ctx context.Context) (*Image, error) {
	silent := time.Duration(0)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.cam == nil {
			if err := s.connect(); err != nil {
				s.disconnect(StateDisconnected, err)
				if err := sleepCtx(ctx, s.backoff); err != nil {
					return nil, err
				}
				s.backoff = min(2*s.backoff, maxBackoff)
				continue
			}
			silent = 0
		}
		err := s.cam.WaitForFrame(1)
		var timeout *webcam.Timeout
		if errors.As(err, &timeout) {
			if silent += time.Second; silent >= s.o.Timeout {
				s.disconnect(StateDisconnected, fmt.Errorf("%s sent no frame for %v", s.path, silent))
			}
			continue
		}
		if err != nil {
			s.disconnect(StateDisconnected, fmt.Errorf("%s: waiting for a frame: %w", s.path, err))
			continue
		}
		b, err := s.cam.ReadFrame()
		if err != nil {
			s.disconnect(StateDisconnected, fmt.Errorf("%s: reading a frame: %w", s.path, err))
			continue
		}
		if len(b) == 0 {
			continue
		}
		silent = 0
		im, err := s.decode(b)
		if err != nil {
			s.update(func(st *SourceStatus) { st.Corrupt++; st.LastError = err.Error() })
			continue
		}
		s.backoff = minBackoff
		s.update(func(st *SourceStatus) { st.Frames++ })
		return im, nil
	}
}

func (s *v4l2) decode(b []byte) (*Image, error) {
	if s.format == FormatMJPEG {
		return DecodeMJPEG(b)
	}
	return DecodeYUYV(b, s.w, s.h)
}

// connect opens the device and negotiates format, size and rate.
func (s *v4l2) connect() error {
	s.update(func(st *SourceStatus) { st.State = StateConnecting })
	cam, err := s.o.OpenCamera(s.path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.path, err)
	}
	format, err := chooseFormat(cam.GetSupportedFormats())
	if err != nil {
		cam.Close()
		return fmt.Errorf("%s: %w", s.path, err)
	}
	w, h := nearestSize(cam.GetSupportedFrameSizes(format), s.o.Width, s.o.Height)
	got, gw, gh, err := cam.SetImageFormat(format, uint32(w), uint32(h))
	if err != nil {
		cam.Close()
		return fmt.Errorf("%s: setting %s %dx%d: %w", s.path, formatName(format), w, h, err)
	}
	if got != format {
		cam.Close()
		return fmt.Errorf("%s: asked for %s, the driver chose %s", s.path, formatName(format), formatName(got))
	}
	rateNote := ""
	if err := cam.SetFramerate(float32(s.o.FPS)); err != nil {
		rateNote = fmt.Sprintf(" (frame rate not set: %v)", err)
	}
	if err := cam.StartStreaming(); err != nil {
		cam.Close()
		return fmt.Errorf("%s: starting the stream: %w", s.path, err)
	}
	s.cam, s.format, s.w, s.h = cam, format, int(gw), int(gh)
	s.update(func(st *SourceStatus) {
		if st.State == StateDisconnected || st.Frames > 0 {
			st.Reconnects++
		}
		st.State, st.LastError = StateStreaming, ""
		st.Format = fmt.Sprintf("%s %dx%d @ %g fps%s", formatName(format), gw, gh, s.o.FPS, rateNote)
	})
	return nil
}

func formatName(f webcam.PixelFormat) string {
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	return strings.TrimRight(string(b), " \x00")
}

// chooseFormat prefers MJPEG, then YUYV; anything else is refused with
// the list of what the camera offers.
func chooseFormat(offered map[webcam.PixelFormat]string) (webcam.PixelFormat, error) {
	for _, f := range []webcam.PixelFormat{FormatMJPEG, FormatYUYV} {
		if _, ok := offered[f]; ok {
			return f, nil
		}
	}
	var have []string
	for f, desc := range offered {
		have = append(have, fmt.Sprintf("%s (%s)", formatName(f), desc))
	}
	sort.Strings(have)
	if len(have) == 0 {
		have = []string{"none"}
	}
	return 0, fmt.Errorf("the camera offers no MJPEG or YUYV format; it offers %s", strings.Join(have, ", "))
}

// nearestSize picks the offered frame size closest to w x h; stepwise
// ranges are clamped and rounded to their step.
func nearestSize(sizes []webcam.FrameSize, w, h int) (int, int) {
	bw, bh, best := w, h, -1
	for _, fs := range sizes {
		cw := clampStep(w, int(fs.MinWidth), int(fs.MaxWidth), int(fs.StepWidth))
		ch := clampStep(h, int(fs.MinHeight), int(fs.MaxHeight), int(fs.StepHeight))
		d := abs(cw-w) + abs(ch-h)
		if best < 0 || d < best {
			bw, bh, best = cw, ch, d
		}
	}
	return bw, bh
}

func clampStep(v, lo, hi, step int) int {
	v = min(max(v, lo), hi)
	if step > 1 {
		v = lo + (v-lo)/step*step
	}
	return v
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
