//go:build !cgo

package cpu

func im2colRows(col []float32, ld int, x []float32, g convGeom, n0, n1, rlo, rhi int) {
	im2colRowsGo(col, ld, x, g, n0, n1, rlo, rhi)
}

func col2imChannels(dx, col []float32, ld int, g convGeom, n0, n1, clo, chi int) {
	col2imChannelsGo(dx, col, ld, g, n0, n1, clo, chi)
}
