package gl

import "testing"

// Every K slice but the last is whole shader steps, the slices cover K
// exactly once, and a product with enough tiles or a short K is not split.
func TestKSplit(t *testing.T) {
	for _, tc := range []struct{ k, tiles, maxZ, splits int }{
		{100, 1, 65535, 1},      // short K
		{100000, 200, 65535, 1}, // enough tiles
		{600, 2, 65535, 2},
		{16384, 1, 65535, 64},
		{16384, 1, 4, 4}, // the driver's z limit
		{1445, 1, 65535, 5},
	} {
		chunk, splits := kSplit(tc.k, tc.tiles, tc.maxZ)
		if splits != tc.splits || splits > tc.maxZ {
			t.Errorf("k %d, %d tiles: %d splits, want %d", tc.k, tc.tiles, splits, tc.splits)
		}
		if splits > 1 && (chunk%gemmBK != 0 || (splits-1)*chunk >= tc.k || splits*chunk < tc.k) {
			t.Errorf("k %d: %d slices of %d do not cover it once", tc.k, splits, chunk)
		}
	}
}
