package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// idxBytes builds an IDX image file of n images h x w.
func idxBytes(n, h, w int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(idxImages))
	for _, d := range []int{n, h, w} {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	for i := 0; i < n*h*w; i++ {
		b.WriteByte(byte(i))
	}
	return b.Bytes()
}

func labelBytes(n int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(idxLabels))
	binary.Write(&b, binary.BigEndian, uint32(n))
	for i := 0; i < n; i++ {
		b.WriteByte(byte(i % 10))
	}
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadIDXPlainAndGzipWithLabels(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a-images-idx3-ubyte"), idxBytes(5, 3, 4))
	write(t, filepath.Join(dir, "a-labels-idx1-ubyte"), labelBytes(5))
	write(t, filepath.Join(dir, "b-images-idx3-ubyte.gz"), gz(idxBytes(5, 3, 4)))
	for _, p := range []string{"a", "b"} {
		imgs, err := LoadIDX(filepath.Join(dir, p), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != 5 || imgs[1].W != 4 || imgs[1].H != 3 || imgs[1].Pix[0] != 12 {
			t.Fatalf("%s: got %d images, second %+v", p, len(imgs), imgs[1])
		}
		if want := map[string]int{"a": 3, "b": -1}[p]; imgs[3].Label != want {
			t.Errorf("%s: label %d, want %d", p, imgs[3].Label, want)
		}
	}
	imgs, _ := LoadIDX(filepath.Join(dir, "a"), 2)
	if len(imgs) != 2 {
		t.Errorf("limit 2 gave %d images", len(imgs))
	}
}

func TestLoadIDXBadFilesNameTheFile(t *testing.T) {
	dir := t.TempDir()
	full := idxBytes(5, 3, 4)
	cases := map[string][]byte{
		"truncated-data":   full[:len(full)-7],
		"truncated-header": full[:9],
		"bad-magic":        append([]byte{0, 0, 9, 9}, full[4:]...),
		"corrupt-gzip":     append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte{0xff}, 40)...),
		"truncated-gzip":   gz(full)[:30],
		"empty":            {},
	}
	for name, b := range cases {
		p := filepath.Join(dir, name+"-images-idx3-ubyte")
		write(t, p, b)
		_, err := LoadIDX(filepath.Join(dir, name), 0)
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	if _, err := LoadIDX(filepath.Join(dir, "missing"), 0); err == nil {
		t.Error("a missing data set loaded")
	}
}

func TestDecodeFormats(t *testing.T) {
	dir := t.TempDir()
	rgb := image.NewRGBA(image.Rect(0, 0, 3, 2))
	rgb.Set(1, 0, color.RGBA{200, 100, 50, 255})
	var pb, jb bytes.Buffer
	png.Encode(&pb, rgb)
	jpeg.Encode(&jb, rgb, &jpeg.Options{Quality: 100})
	gray := image.NewGray(image.Rect(0, 0, 2, 2))
	gray.Pix[3] = 77
	var gb bytes.Buffer
	png.Encode(&gb, gray)
	write(t, filepath.Join(dir, "c.png"), pb.Bytes())
	write(t, filepath.Join(dir, "c.jpg"), jb.Bytes())
	write(t, filepath.Join(dir, "g.png"), gb.Bytes())
	write(t, filepath.Join(dir, "p5.pgm"), append([]byte("P5\n# comment\n2 2\n255\n"), 1, 2, 3, 4))
	write(t, filepath.Join(dir, "p6.ppm"), append([]byte("P6 1 1 255\n"), 9, 8, 7))
	write(t, filepath.Join(dir, "p2.pgm"), []byte("P2\n2 1\n15\n15 0\n"))
	write(t, filepath.Join(dir, "p16.pgm"), append([]byte("P5 1 1 65535\n"), 0xff, 0xff))
	check := func(name string, w, h, c int, at int, want uint8) {
		im, err := DecodeFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if im.W != w || im.H != h || im.C != c || im.Validate() != nil {
			t.Fatalf("%s: %dx%dx%d", name, im.W, im.H, im.C)
		}
		if want != 0 && im.Pix[at] != want {
			t.Errorf("%s: pixel byte %d = %d, want %d", name, at, im.Pix[at], want)
		}
	}
	check("c.png", 3, 2, 3, 3, 200)
	check("c.jpg", 3, 2, 3, 0, 0)
	check("g.png", 2, 2, 1, 3, 77)
	check("p5.pgm", 2, 2, 1, 3, 4)
	check("p6.ppm", 1, 1, 3, 2, 7)
	check("p2.pgm", 2, 1, 1, 0, 255)
	check("p16.pgm", 1, 1, 1, 0, 255)
}

func TestLoadDirSkipsAndCountsCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	var pb bytes.Buffer
	png.Encode(&pb, image.NewGray(image.Rect(0, 0, 4, 4)))
	good := pb.Bytes()
	write(t, filepath.Join(dir, "1.png"), good)
	write(t, filepath.Join(dir, "2.png"), good[:len(good)/2])
	write(t, filepath.Join(dir, "3.jpg"), []byte("not a jpeg at all"))
	write(t, filepath.Join(dir, "4.pgm"), []byte("P5 4 4 255\n\x01\x02"))
	write(t, filepath.Join(dir, "notes.txt"), []byte("ignored"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	write(t, filepath.Join(dir, "sub", "5.png"), good)
	d, err := Open("dir:"+dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images) != 2 || len(d.Skipped) != 3 {
		t.Fatalf("%d images, %d skipped; want 2 and 3", len(d.Images), len(d.Skipped))
	}
	for i, name := range []string{"2.png", "3.jpg", "4.pgm"} {
		if !strings.Contains(d.Skipped[i].Error(), name) {
			t.Errorf("skip %d: %q does not name %s", i, d.Skipped[i], name)
		}
	}
	if _, err := Open("dir:"+t.TempDir(), 0); err == nil {
		t.Error("an empty directory gave a data set")
	}
	if _, err := Open("webcam:0", 0); err == nil || !strings.Contains(err.Error(), "webcam") {
		t.Errorf("unknown source kind: %v", err)
	}
}

// FuzzDecodePNM: arbitrary bytes give an image or an error, never a panic.
func FuzzDecodePNM(f *testing.F) {
	f.Add([]byte("P5 2 2 255\n\x01\x02\x03\x04"))
	f.Add([]byte("P3\n1 1\n255\n1 2 3\n"))
	f.Add([]byte("P6 1 1 65535\n\x00\x01\x00\x02\x00\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if im, err := DecodePNM(b, MaxPixels); err == nil {
			if err := im.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// idx:PREFIX?labels=... keeps the images of those classes, loaded or streamed.
func TestIDXLabelFilter(t *testing.T) {
	const prefix = "/usr/share/datasets/fashion-mnist/t10k"
	if _, err := os.Stat(prefix + "-images-idx3-ubyte.gz"); err != nil {
		t.Skipf("Fashion-MNIST not installed (make deps): %v", err)
	}
	ds, err := Open("idx:"+prefix+"?labels=3,6", 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Images) != 50 {
		t.Fatalf("%d images", len(ds.Images))
	}
	for _, im := range ds.Images {
		if im.Label != 3 && im.Label != 6 {
			t.Fatalf("label %d kept", im.Label)
		}
	}
	src, err := OpenStream("idx:"+prefix+"?labels=9", StreamOptions{FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < 20; i++ {
		im, err := src.Next(context.Background())
		if err != nil || im.Label != 9 {
			t.Fatalf("frame %d: label %v, %v", i, im, err)
		}
	}
	for _, bad := range []string{"?labels=", "?labels=x", "?label=1", "?labels=300"} {
		if _, err := Open("idx:"+prefix+bad, 1); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A PNM header promising more than its body holds is refused before the
// pixel buffer is allocated (17 bytes allocated 48 MiB before).
func TestPNMHeaderIsCheckedAgainstTheBody(t *testing.T) {
	bodies := [][]byte{[]byte("P6\n4096 4096\n255\n"), []byte("P3\n4096 4096\n255\n1 2 3\n"),
		[]byte("P5\n4096 4096\n65535\n" + strings.Repeat("x", 4096*4096))} // 16-bit: half the bytes needed
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, b := range bodies {
		if _, err := DecodePNM(b, MaxPixels); err == nil || !strings.Contains(err.Error(), "cannot hold it") {
			t.Errorf("%.20q: %v, want the body refused", b, err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("refusing them allocated %d bytes", d)
	}
	if _, err := DecodePNM([]byte("P6\n3000 3000\n255\n"), 2048*2048); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	if im, err := DecodePNM([]byte("P2\n2 1\n255\n0 255"), MaxPixels); err != nil || im.Pix[1] != 255 {
		t.Errorf("a plain PGM with no separator after its last sample: %v", err)
	}
}
