package daemon

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/swavd/swavd/capture"
)

// Replay is the training memory: a fixed number of frames stored as uint8
// at the working size, in one allocation. A share of the slots holds the
// newest frames (a ring) so training follows the scene as it changes; a
// frame leaving that ring is offered to the rest, a reservoir sample
// (Algorithm R) of all older frames, so training does not forget. Each
// frame is stored once.
type Replay struct {
	mu        sync.Mutex
	w, h, c   int
	pix       []uint8 // capacity frames of w*h*c bytes
	labels    []int32
	recentCap int // slots [0, recentCap) are the recent ring
	recentPos int
	recentLen int
	resLen    int    // filled reservoir slots, after recentCap
	seen      uint64 // frames offered to the reservoir
	rng       *rand.Rand
}

// NewReplay makes a buffer of capacity frames of size x size x channels,
// recentShare of them for the newest frames.
func NewReplay(capacity, size, channels int, recentShare float64, seed uint64) *Replay {
	rc := int(float64(capacity) * recentShare)
	return &Replay{w: size, h: size, c: channels, pix: make([]uint8, capacity*size*size*channels),
		labels: make([]int32, capacity), recentCap: rc, rng: rand.New(rand.NewPCG(seed, 0x7e91a7))}
}

func (r *Replay) frameBytes() int { return r.w * r.h * r.c }
func (r *Replay) capacity() int   { return len(r.labels) }

// Len is the number of frames held.
func (r *Replay) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recentLen + r.resLen
}

// Cap is the number of frames it can hold.
func (r *Replay) Cap() int { return r.capacity() }

func (r *Replay) slot(i int) []uint8 {
	fb := r.frameBytes()
	return r.pix[i*fb : (i+1)*fb]
}

// Add stores a frame (already at the working size and channel count).
func (r *Replay) Add(im *capture.Image) error {
	if im.W != r.w || im.H != r.h || im.C != r.c {
		return fmt.Errorf("replay: frame %dx%dx%d, want %dx%dx%d", im.W, im.H, im.C, r.w, r.h, r.c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recentCap == 0 {
		r.offer(im.Pix, int32(im.Label))
		return nil
	}
	i := r.recentPos
	if r.recentLen == r.recentCap { // the oldest recent frame moves on
		r.offer(r.slot(i), r.labels[i])
	} else {
		r.recentLen++
	}
	copy(r.slot(i), im.Pix)
	r.labels[i] = int32(im.Label)
	r.recentPos = (r.recentPos + 1) % r.recentCap
	return nil
}

// offer gives a frame to the reservoir.
func (r *Replay) offer(pix []uint8, label int32) {
	resCap := r.capacity() - r.recentCap
	if resCap == 0 {
		return
	}
	r.seen++
	j := r.resLen
	if r.resLen < resCap {
		r.resLen++
	} else if k := r.rng.Uint64N(r.seen); k < uint64(resCap) {
		j = int(k)
	} else {
		return
	}
	copy(r.slot(r.recentCap+j), pix)
	r.labels[r.recentCap+j] = label
}

// Sample fills dst with frames drawn uniformly from those held; the images
// in dst are reused between calls.
func (r *Replay) Sample(dst []*capture.Image, rng *rand.Rand) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.recentLen + r.resLen
	if n == 0 {
		return fmt.Errorf("replay: empty")
	}
	fb := r.frameBytes()
	for i := range dst {
		k := rng.IntN(n)
		slot := k
		if k >= r.recentLen {
			slot = r.recentCap + k - r.recentLen
		}
		if dst[i] == nil || len(dst[i].Pix) != fb {
			dst[i] = &capture.Image{W: r.w, H: r.h, C: r.c, Pix: make([]uint8, fb)}
		}
		copy(dst[i].Pix, r.pix[slot*fb:(slot+1)*fb])
		dst[i].Label = int(r.labels[slot])
	}
	return nil
}

// Replay files: version 2 holds the filled slots only; version 1 (every
// slot, filled or not) is still read.
const (
	replayMagic   = "SWAVRPL2"
	replayMagicV1 = "SWAVRPL1"
)

// filled lists the slots that recentLen and resLen fill as [lo, hi)
// ranges: the recent ring fills from slot 0 up, the reservoir from
// recentCap up.
func (r *Replay) filled(recentLen, resLen int) [][2]int {
	return [][2]int{{0, recentLen}, {r.recentCap, r.recentCap + resLen}}
}

// WriteTo serializes the buffer: header, then the labels and pixels of the
// filled slots only, so a new buffer costs little disk.
func (r *Replay) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	bw := bufio.NewWriter(w)
	hdr := []uint64{uint64(r.w), uint64(r.h), uint64(r.c), uint64(r.capacity()), uint64(r.recentCap),
		uint64(r.recentPos), uint64(r.recentLen), uint64(r.resLen), r.seen}
	bw.WriteString(replayMagic)
	binary.Write(bw, binary.LittleEndian, hdr)
	n := int64(len(replayMagic) + 8*len(hdr))
	fb := r.frameBytes()
	filled := r.filled(r.recentLen, r.resLen)
	for _, f := range filled {
		binary.Write(bw, binary.LittleEndian, r.labels[f[0]:f[1]])
		n += int64(4 * (f[1] - f[0]))
	}
	for _, f := range filled {
		bw.Write(r.pix[f[0]*fb : f[1]*fb])
		n += int64((f[1] - f[0]) * fb)
	}
	return n, bw.Flush()
}

// Restore reads a buffer written by WriteTo; its geometry must match.
func (r *Replay) Restore(rd io.Reader) error {
	br := bufio.NewReader(rd)
	magic := make([]byte, len(replayMagic))
	if _, err := io.ReadFull(br, magic); err != nil || (string(magic) != replayMagic && string(magic) != replayMagicV1) {
		return fmt.Errorf("replay: not a replay buffer file")
	}
	hdr := make([]uint64, 9)
	if err := binary.Read(br, binary.LittleEndian, hdr); err != nil {
		return fmt.Errorf("replay: header: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := []uint64{uint64(r.w), uint64(r.h), uint64(r.c), uint64(r.capacity()), uint64(r.recentCap)}
	for i, v := range want {
		if hdr[i] != v {
			return fmt.Errorf("replay: saved as %dx%dx%d x %d frames (%d recent); configured %dx%dx%d x %d (%d recent)",
				hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], r.w, r.h, r.c, r.capacity(), r.recentCap)
		}
	}
	if hdr[5] >= uint64(max(r.recentCap, 1)) || hdr[6] > uint64(r.recentCap) || hdr[7] > uint64(r.capacity()-r.recentCap) {
		return fmt.Errorf("replay: inconsistent header")
	}
	recentLen, resLen := int(hdr[6]), int(hdr[7])
	ranges := [][2]int{{0, r.capacity()}} // version 1: every slot
	if string(magic) == replayMagic {
		ranges = r.filled(recentLen, resLen)
	}
	// Read into new buffers so that a short file changes nothing.
	labels := make([]int32, len(r.labels))
	pix := make([]uint8, len(r.pix))
	fb := r.frameBytes()
	for _, f := range ranges {
		if err := binary.Read(br, binary.LittleEndian, labels[f[0]:f[1]]); err != nil {
			return fmt.Errorf("replay: labels: %w", err)
		}
	}
	for _, f := range ranges {
		if _, err := io.ReadFull(br, pix[f[0]*fb:f[1]*fb]); err != nil {
			return fmt.Errorf("replay: pixels: %w", err)
		}
	}
	r.labels, r.pix = labels, pix
	r.recentPos, r.recentLen, r.resLen, r.seen = int(hdr[5]), recentLen, resLen, hdr[8]
	return nil
}
