//go:build !cgo

package cpu

// Without cgo there is no Winograd path: convolutions are lowered.
const haveWinograd = false

func (b *Backend) winogradConv(y, x, w []float32, g convGeom) {
	panic("cpu: winograd convolution in a build without cgo")
}
