package augment

import "testing"

func TestFilterTapsFlipMirrors(t *testing.T) {
	a := filterTaps(5, 2, 10, 20, false)
	b := filterTaps(5, 2, 10, 20, true)
	for o := range a {
		if a[o].first != b[len(b)-1-o].first || len(a[o].w) != len(b[len(b)-1-o].w) {
			t.Fatalf("flip is not the mirror at %d", o)
		}
		var s float32
		for _, w := range a[o].w {
			s += w
		}
		if s < 0.9999 || s > 1.0001 {
			t.Fatalf("weights of output %d sum to %v", o, s)
		}
	}
}
