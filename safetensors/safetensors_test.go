package safetensors

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, -6.5}},
		{Name: "b.c", Shape: []int{1}, Data: []float32{3.25}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, in, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	hl := binary.LittleEndian.Uint64(buf.Bytes()[:8])
	if hl%8 != 0 {
		t.Errorf("header length %d not 8-aligned", hl)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["k"] != "v" || strings.Join(f.Names(), ",") != "a,b.c" {
		t.Fatalf("metadata %v names %v", f.Metadata, f.Names())
	}
	for _, want := range in {
		got := f.Tensors[want.Name]
		if len(got.Shape) != len(want.Shape) || len(got.Data) != len(want.Data) {
			t.Fatalf("%s: %+v", want.Name, got)
		}
		for i := range want.Data {
			if got.Data[i] != want.Data[i] {
				t.Fatalf("%s[%d] = %v, want %v", want.Name, i, got.Data[i], want.Data[i])
			}
		}
	}
	if err := Write(&buf, []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1}}}, nil); err == nil {
		t.Error("a shape that does not match the data was written")
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	var good bytes.Buffer
	Write(&good, []Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}}, nil)
	g := good.Bytes()
	header := func(h string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, 8)...)
	}
	cases := map[string][]byte{
		"short":          g[:5],
		"truncated data": g[:len(g)-1],
		"huge header":    binary.LittleEndian.AppendUint64(nil, 1<<62),
		"bad json":       header("{"),
		"bad dtype":      header(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`),
		"range":          header(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`),
		"negative":       header(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`),
		// 2^31 x 2^31 x 4 wraps to 0 in int64 arithmetic: parsed as empty before.
		"overflow": header(`{"a":{"dtype":"F32","shape":[2147483648,2147483648,4],"data_offsets":[0,0]},` +
			`"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`),
		"overlap":  header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`),
		"gap":      header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`),
		"trailing": header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`),
	}
	for name, b := range cases {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestInt64AndByteTensors(t *testing.T) {
	var buf bytes.Buffer
	in := []Tensor{{Name: "f", Shape: []int{1}, Data: []float32{0.5}}, {Name: "n", Shape: []int{3}, Ints: []int64{1, -2, 1 << 40}},
		{Name: "u", Shape: []int{1, 3}, Bytes: []uint8{7, 0, 255}}, {Name: "z", Shape: []int{2}, Data: []float32{1, 2}}}
	if err := Write(&buf, in, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if u := f.Tensors["u"].Bytes; len(u) != 3 || u[2] != 255 || f.Tensors["z"].Data[1] != 2 {
		t.Fatalf("bytes %v, after them %v", u, f.Tensors["z"].Data)
	}
	if n := f.Tensors["n"]; n.Data != nil || len(n.Ints) != 3 || n.Ints[2] != 1<<40 || n.Ints[1] != -2 || f.Tensors["f"].Data[0] != 0.5 {
		t.Fatalf("parsed %+v", f.Tensors)
	}
}

func FuzzParse(f *testing.F) {
	var good bytes.Buffer
	Write(&good, []Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}}, map[string]string{"m": "1"})
	f.Add(good.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) { Parse(b) })
}

func TestFileWritesBack(t *testing.T) {
	var a, b bytes.Buffer
	Write(&a, []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1, 2}}, {Name: "n", Shape: []int{1}, Ints: []int64{7}}}, map[string]string{"k": "v"})
	f, err := Parse(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b.Bytes())
	if err != nil || g.Metadata["k"] != "v" || g.Tensors["x"].Data[1] != 2 || g.Tensors["n"].Ints[0] != 7 {
		t.Fatalf("written back: %v %+v", err, g)
	}
}
