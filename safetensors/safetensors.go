// Package safetensors reads and writes float32 (F32), int64 (I64) and
// uint8 (U8) tensors in the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data. Parse
// trusts no byte of its input: shape products are checked for overflow and
// the tensors' byte ranges must tile the data exactly, as the format
// requires.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
)

// Tensor is one named tensor: float32 values in Data, int64 values in
// Ints, or bytes in Bytes; exactly one is set.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
	Ints  []int64
	Bytes []uint8
}

func (t Tensor) dtype() (name string, size, n int) {
	switch {
	case t.Ints != nil:
		return "I64", 8, len(t.Ints)
	case t.Bytes != nil:
		return "U8", 1, len(t.Bytes)
	}
	return "F32", 4, len(t.Data)
}

type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header a reader accepts.
const maxHeader = 100 << 20

// Write writes tensors (in the given order) and string metadata.
func Write(w io.Writer, tensors []Tensor, meta map[string]string) error {
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for _, t := range tensors {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		dtype, size, have := t.dtype()
		if n != have {
			return fmt.Errorf("safetensors: %s: shape %v holds %d values, have %d", t.Name, t.Shape, n, have)
		}
		if _, dup := header[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: duplicate or reserved tensor name %q", t.Name)
		}
		header[t.Name] = entry{DType: dtype, Shape: t.Shape, Offsets: [2]int64{off, off + int64(size*n)}}
		off += int64(size * n)
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(hj)))
	if _, err := w.Write(lb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		if t.Bytes != nil {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if _, err := w.Write(t.Bytes); err != nil {
				return err
			}
			continue
		}
		for i := 0; i < len(t.Data)+len(t.Ints); i++ {
			if t.Ints != nil {
				buf = binary.LittleEndian.AppendUint64(buf, uint64(t.Ints[i]))
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(t.Data[i]))
			}
			if len(buf) >= cap(buf)-8 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// File is a parsed safetensors file.
type File struct {
	Tensors  map[string]Tensor
	Metadata map[string]string
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	var n []string
	for k := range f.Tensors {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Write writes the file back: its tensors in name order, its metadata.
func (f *File) Write(w io.Writer) error {
	ts := make([]Tensor, 0, len(f.Tensors))
	for _, n := range f.Names() {
		ts = append(ts, f.Tensors[n])
	}
	return Write(w, ts, f.Metadata)
}

// Parse reads a whole safetensors file from b, checking every offset.
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors: file is truncated (%d bytes)", len(b))
	}
	hl := binary.LittleEndian.Uint64(b[:8])
	if hl > maxHeader || 8+hl > uint64(len(b)) {
		return nil, fmt.Errorf("safetensors: header length %d does not fit the file of %d bytes", hl, len(b))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hl], &raw); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	data := b[8+hl:]
	f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{}}
	type span struct {
		name   string
		lo, hi int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: metadata: %w", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		var size int64
		switch e.DType {
		case "F32":
			size = 4
		case "I64":
			size = 8
		case "U8":
			size = 1
		default:
			return nil, fmt.Errorf("safetensors: tensor %q has dtype %s, only F32, I64 and U8 are read", name, e.DType)
		}
		// The element count may not exceed what the data could hold; checked
		// at every factor, so the product never overflows.
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %q has bad shape %v", name, e.Shape)
			}
			if d > 0 && n > int64(len(data))/size/int64(d) {
				return nil, fmt.Errorf("safetensors: tensor %q: shape %v holds more values than the %d data bytes", name, e.Shape, len(data))
			}
			n *= int64(d)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) || hi-lo != size*n {
			return nil, fmt.Errorf("safetensors: tensor %q: byte range [%d,%d) does not fit shape %v in %d data bytes", name, lo, hi, e.Shape, len(data))
		}
		spans = append(spans, span{name, lo, hi})
		t := Tensor{Name: name, Shape: e.Shape}
		switch size {
		case 1:
			t.Bytes = append([]uint8{}, data[lo:hi]...)
		case 8:
			t.Ints = make([]int64, n)
			for i := range t.Ints {
				t.Ints[i] = int64(binary.LittleEndian.Uint64(data[lo+8*int64(i):]))
			}
		default:
			t.Data = make([]float32, n)
			for i := range t.Data {
				t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+4*int64(i):]))
			}
		}
		f.Tensors[name] = t
	}
	// The byte ranges tile the data: no gap, no overlap, nothing after.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].lo != spans[j].lo {
			return spans[i].lo < spans[j].lo
		}
		return spans[i].hi < spans[j].hi
	})
	var end int64
	for _, sp := range spans {
		if sp.lo != end {
			return nil, fmt.Errorf("safetensors: tensor %q starts at byte %d, expected %d (a gap or an overlap)", sp.name, sp.lo, end)
		}
		end = sp.hi
	}
	if end != int64(len(data)) {
		return nil, fmt.Errorf("safetensors: %d data bytes after the last tensor", int64(len(data))-end)
	}
	return f, nil
}
