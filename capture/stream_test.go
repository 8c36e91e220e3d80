package capture

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blackjack/webcam"
)

// Real frame bytes made by ffmpeg (`make testframes`): its testsrc pattern
// as MJPEG and as YUYV, and ffmpeg's own RGB decoding of each.
func readFrame(t testing.TB, name string) []byte {
	b, err := os.ReadFile("testdata/frames/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compareRGB checks our decoding against ffmpeg's: mean absolute error
// per sample and the share of samples off by more than 16.
func compareRGB(t *testing.T, got *Image, want []byte, maxMean float64) {
	t.Helper()
	if got.C != 3 || len(got.Pix) != len(want) {
		t.Fatalf("decoded %dx%dx%d (%d bytes), ffmpeg has %d bytes", got.W, got.H, got.C, len(got.Pix), len(want))
	}
	var sum float64
	far := 0
	for i := range want {
		d := float64(got.Pix[i]) - float64(want[i])
		if d < 0 {
			d = -d
		}
		sum += d
		if d > 16 {
			far++
		}
	}
	mean := sum / float64(len(want))
	if mean > maxMean || far > len(want)/50 {
		t.Fatalf("differs from ffmpeg: mean |d| %.2f (max %.2f), %d samples off by >16", mean, maxMean, far)
	}
	t.Logf("mean |d| vs ffmpeg %.2f, %d of %d samples off by >16", mean, far, len(want))
}

func TestDecodeYUYVMatchesFFmpeg(t *testing.T) {
	im, err := DecodeYUYV(readFrame(t, "testsrc-64x48.yuyv"), 64, 48)
	if err != nil {
		t.Fatal(err)
	}
	compareRGB(t, im, readFrame(t, "testsrc-64x48.yuyv.rgb"), 1.5)
}

func TestDecodeMJPEGMatchesFFmpeg(t *testing.T) {
	im, err := DecodeMJPEG(readFrame(t, "testsrc-64x48.mjpeg"))
	if err != nil {
		t.Fatal(err)
	}
	if im.W != 64 || im.H != 48 {
		t.Fatalf("size %dx%d", im.W, im.H)
	}
	compareRGB(t, im, readFrame(t, "testsrc-64x48.mjpeg.rgb"), 3)
}

// stripDHT removes the Huffman table segments, as many UVC cameras send.
func stripDHT(b []byte) []byte {
	out := append([]byte(nil), b[:2]...)
	for i := 2; i+4 <= len(b); {
		n := 2 + int(b[i+2])<<8 + int(b[i+3])
		if b[i+1] == 0xDA {
			return append(out, b[i:]...)
		}
		if b[i+1] != 0xC4 {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

func TestDecodeMJPEGWithoutHuffmanTables(t *testing.T) {
	full := readFrame(t, "testsrc-64x48.mjpeg")
	bare := stripDHT(full)
	if hasHuffmanTables(bare) || !hasHuffmanTables(full) || len(bare) >= len(full) {
		t.Fatal("test frame: stripping the DHT segments did not work")
	}
	a, err := DecodeMJPEG(full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeMJPEG(bare)
	if err != nil {
		t.Fatalf("frame without Huffman tables: %v", err)
	}
	// ffmpeg's encoder writes the Annex K tables, so both decode alike.
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("the inserted standard tables decode differently from the frame's own")
	}
}

func TestCorruptFramesAreErrCorrupt(t *testing.T) {
	mj := readFrame(t, "testsrc-64x48.mjpeg")
	cases := map[string]func() error{
		"empty mjpeg":     func() error { _, err := DecodeMJPEG(nil); return err },
		"truncated mjpeg": func() error { _, err := DecodeMJPEG(mj[:len(mj)/2]); return err },
		"not a jpeg":      func() error { _, err := DecodeMJPEG([]byte("hello world")); return err },
		"short yuyv":      func() error { _, err := DecodeYUYV(make([]byte, 100), 64, 48); return err },
		"odd yuyv width":  func() error { _, err := DecodeYUYV(make([]byte, 1000), 5, 4); return err },
	}
	for name, fn := range cases {
		if err := fn(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeMJPEG(f *testing.F) {
	mj := readFrame(f, "testsrc-64x48.mjpeg")
	f.Add(mj)
	f.Add(stripDHT(mj))
	f.Add(mj[:300])
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC4, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Headers claiming megapixels are valid but take a second each to
		// decode; the fuzzer's time is better spent on the parsing.
		if cfg, err := jpeg.DecodeConfig(bytes.NewReader(b)); err == nil && cfg.Width*cfg.Height > 1<<20 {
			return
		}
		im, err := DecodeMJPEG(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if err := im.Validate(); err != nil || im.C != 3 {
			t.Fatalf("decoded a bad image: %v (C=%d)", err, im.C)
		}
	})
}

func FuzzDecodeYUYV(f *testing.F) {
	f.Add(readFrame(f, "testsrc-64x48.yuyv"), 64, 48)
	f.Add([]byte{1, 2, 3}, 2, 1)
	f.Add([]byte{}, 0, 0)
	f.Fuzz(func(t *testing.T, b []byte, w, h int) {
		if w > 4096 || h > 4096 {
			return
		}
		im, err := DecodeYUYV(b, w, h)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if err := im.Validate(); err != nil || im.W != w || im.H != h {
			t.Fatalf("decoded a bad image: %v", err)
		}
	})
}

// fakeCamera is a V4L2 device in memory: it offers formats and serves
// frames until told to vanish.
type fakeCamera struct {
	formats map[webcam.PixelFormat]string
	sizes   []webcam.FrameSize
	frames  [][]byte
	mu      sync.Mutex
	next    int
	gone    bool
	setW    uint32
	closed  bool
}

func (c *fakeCamera) GetSupportedFormats() map[webcam.PixelFormat]string { return c.formats }
func (c *fakeCamera) GetSupportedFrameSizes(webcam.PixelFormat) []webcam.FrameSize {
	return c.sizes
}
func (c *fakeCamera) SetImageFormat(f webcam.PixelFormat, w, h uint32) (webcam.PixelFormat, uint32, uint32, error) {
	c.setW = w
	return f, w, h, nil
}
func (c *fakeCamera) SetFramerate(float32) error { return errors.New("not supported by the fake") }
func (c *fakeCamera) StartStreaming() error      { return nil }
func (c *fakeCamera) WaitForFrame(uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return errors.New("no such device")
	}
	return nil
}
func (c *fakeCamera) ReadFrame() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return nil, errors.New("no such device")
	}
	f := c.frames[c.next%len(c.frames)]
	c.next++
	return f, nil
}
func (c *fakeCamera) Close() error { c.closed = true; return nil }

func discrete(w, h uint32) webcam.FrameSize {
	return webcam.FrameSize{MinWidth: w, MaxWidth: w, MinHeight: h, MaxHeight: h}
}

func TestV4L2NegotiatesAndDecodes(t *testing.T) {
	mj, yuyv := readFrame(t, "testsrc-64x48.mjpeg"), readFrame(t, "testsrc-64x48.yuyv")
	for _, tc := range []struct {
		name    string
		formats map[webcam.PixelFormat]string
		frame   []byte
		want    string
	}{
		{"mjpeg preferred", map[webcam.PixelFormat]string{FormatYUYV: "YUYV 4:2:2", FormatMJPEG: "Motion-JPEG"}, mj, "MJPG 64x48"},
		{"yuyv fallback", map[webcam.PixelFormat]string{FormatYUYV: "YUYV 4:2:2", fourcc("H264"): "H.264"}, yuyv, "YUYV 64x48"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := &fakeCamera{formats: tc.formats, sizes: []webcam.FrameSize{discrete(64, 48), discrete(640, 480)}, frames: [][]byte{tc.frame}}
			src, err := OpenStream("v4l2:/dev/fake0", StreamOptions{FPS: 30, Width: 80, Height: 60,
				OpenCamera: func(string) (Camera, error) { return cam, nil }})
			if err != nil {
				t.Fatal(err)
			}
			im, err := src.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if im.W != 64 || im.H != 48 || im.C != 3 || cam.setW != 64 {
				t.Fatalf("got %dx%dx%d, asked the camera for width %d", im.W, im.H, im.C, cam.setW)
			}
			st := src.Status()
			if st.State != StateStreaming || !strings.HasPrefix(st.Format, tc.want) || st.Frames != 1 {
				t.Fatalf("status %+v, want format %q", st, tc.want)
			}
		})
	}
}

func TestV4L2RefusesUnknownFormatsListingOffers(t *testing.T) {
	_, err := chooseFormat(map[webcam.PixelFormat]string{fourcc("H264"): "H.264", fourcc("GREY"): "8-bit Greyscale"})
	if err == nil || !strings.Contains(err.Error(), "H264 (H.264)") || !strings.Contains(err.Error(), "GREY (8-bit Greyscale)") {
		t.Fatalf("got %v; want an error listing the offered formats", err)
	}
}

// A camera that vanishes is retried with backoff, reported as
// disconnected meanwhile, and streams again once it is back. Corrupt
// frames are counted and skipped.
func TestV4L2ReconnectsAndSkipsCorruptFrames(t *testing.T) {
	mj := readFrame(t, "testsrc-64x48.mjpeg")
	cam := &fakeCamera{formats: map[webcam.PixelFormat]string{FormatMJPEG: "Motion-JPEG"}, sizes: []webcam.FrameSize{discrete(64, 48)},
		frames: [][]byte{mj, mj[:100], mj}}
	var mu sync.Mutex
	opens, present := 0, true
	src, _ := OpenStream("v4l2:/dev/fake0", StreamOptions{FPS: 30, Width: 64, Height: 48, OpenCamera: func(string) (Camera, error) {
		mu.Lock()
		defer mu.Unlock()
		opens++
		if !present {
			return nil, errors.New("no such file or directory")
		}
		cam.gone = false
		return cam, nil
	}})
	ctx := context.Background()
	for i := 0; i < 2; i++ { // frame, corrupt (skipped), frame
		if _, err := src.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := src.Status(); st.Corrupt != 1 || st.Frames != 2 {
		t.Fatalf("status %+v: want 2 frames and 1 corrupt", st)
	}
	mu.Lock()
	present = false
	cam.mu.Lock()
	cam.gone = true
	cam.mu.Unlock()
	mu.Unlock()
	got := make(chan error, 1)
	go func() { _, err := src.Next(ctx); got <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for src.Status().State != StateDisconnected || opens < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no retries reported: %+v after %d opens", src.Status(), opens)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := src.Status(); !strings.Contains(st.LastError, "no such file") {
		t.Fatalf("status does not say why: %+v", st)
	}
	mu.Lock()
	present = true
	mu.Unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not reconnect")
	}
	if st := src.Status(); st.State != StateStreaming || st.Reconnects != 1 {
		t.Fatalf("after reconnecting: %+v", st)
	}
}

func TestReplayIsPacedAndLoops(t *testing.T) {
	path := t.TempDir() + "/set-images-idx3-ubyte"
	write(t, path, idxBytes(3, 8, 8))
	src, err := OpenStream("idx:"+path, StreamOptions{FPS: 200})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var first *Image
	for i := 0; i < 7; i++ {
		im, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = im
		}
		if i == 3 && !bytes.Equal(im.Pix, first.Pix) {
			t.Fatal("replay did not loop after 3 images")
		}
	}
	// Seven frames at 200 fps are due over 30 ms; a source that does not
	// pace would return them at once.
	if el := time.Since(t0); el < 25*time.Millisecond {
		t.Fatalf("7 frames at 200 fps took %v", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Next: %v", err)
	}
}

// A directory replay decodes one file per frame: a corrupt file is counted
// and skipped; a data set that vanishes is reported and retried.
func TestReplayCorruptFilesAndVanishingData(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/a.pgm", []byte("P5\n2 2\n255\n\x00\x01\x02\x03"))
	write(t, dir+"/b.pgm", []byte("P5\n2 2\n255\n\x00"))
	src, err := OpenStream("dir:"+dir, StreamOptions{FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := src.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if st := src.Status(); st.Frames != 3 || st.Corrupt != 2 || !strings.Contains(st.LastError, "b.pgm") {
		t.Fatalf("status %+v: want 3 frames, 2 corrupt naming b.pgm", st)
	}

	path := t.TempDir() + "/set-images-idx3-ubyte"
	write(t, path, idxBytes(2, 4, 4))
	src, err = OpenStream("idx:"+path, StreamOptions{FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		src.Next(context.Background())
	}
	os.Remove(path)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := src.Next(ctx); err == nil {
		t.Fatal("a frame from a deleted data set")
	}
	if st := src.Status(); st.State != StateDisconnected || !strings.Contains(st.LastError, "no such file") {
		t.Fatalf("status %+v", st)
	}
	write(t, path, idxBytes(2, 4, 4))
	if _, err := src.Next(context.Background()); err != nil || src.Status().State != StateStreaming {
		t.Fatalf("after the data came back: %v %+v", err, src.Status())
	}
}

func TestPatternSource(t *testing.T) {
	src, err := OpenStream("pattern", StreamOptions{FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[int]bool{}
	for i := 0; i < 64; i++ {
		im, _ := src.Next(context.Background())
		if err := im.Validate(); err != nil {
			t.Fatal(err)
		}
		kinds[im.Label] = true
	}
	if len(kinds) < PatternKinds-1 {
		t.Fatalf("64 frames showed %d kinds", len(kinds))
	}
}

func TestOpenStreamErrors(t *testing.T) {
	for spec, want := range map[string]string{"rtsp://x": "unknown kind", "v4l2:": "want v4l2:", "idx:/nonexistent": "no IDX"} {
		if _, err := OpenStream(spec, StreamOptions{FPS: 1}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", spec, err, want)
		}
	}
}

// A replay whose file ends early is counted (corrupt, with the error) each
// time it reaches the end, and starts over: before, it looped silently.
func TestTruncatedReplayIsCounted(t *testing.T) {
	path := t.TempDir() + "/set-images-idx3-ubyte"
	full := idxBytes(5, 8, 8)
	write(t, path, full[:len(full)-3*64]) // the header says 5 images; 2 are there
	src, err := OpenStream("idx:"+path, StreamOptions{FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < 6; i++ {
		if _, err := src.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := src.Status()
	if st.Corrupt < 2 || !strings.Contains(st.LastError, "truncated") || st.State != StateStreaming {
		t.Fatalf("status %+v: want the truncation counted and reported", st)
	}
}
