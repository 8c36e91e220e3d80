package main

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"

	"github.com/swavd/swavd/api"
)

// writeMosaic draws one row per cluster (most used first) of its
// exemplars, each scaled to a 48-pixel tile, with a 2-pixel gap.
func writeMosaic(path string, clusters []api.Cluster) error {
	const tile, gap = 48, 2
	cols := 0
	for _, c := range clusters {
		cols = max(cols, len(c.Exemplars))
	}
	if len(clusters) == 0 || cols == 0 {
		return fmt.Errorf("mosaic: no exemplars yet")
	}
	m := image.NewRGBA(image.Rect(0, 0, cols*(tile+gap), len(clusters)*(tile+gap)))
	draw.Draw(m, m.Bounds(), image.White, image.Point{}, draw.Src)
	for r, c := range clusters {
		for i, b := range c.Exemplars {
			ex, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("mosaic: cluster %d exemplar %d: %w", c.ID, i, err)
			}
			x0, y0 := i*(tile+gap), r*(tile+gap)
			eb := ex.Bounds()
			for y := 0; y < tile; y++ {
				for x := 0; x < tile; x++ { // nearest neighbour: exemplars are small
					m.Set(x0+x, y0+y, ex.At(eb.Min.X+x*eb.Dx()/tile, eb.Min.Y+y*eb.Dy()/tile))
				}
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, m); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
