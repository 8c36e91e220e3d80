//go:build !cgo

package cpu

// Without cgo there is no Winograd path: convolutions are lowered.
const haveWinograd = false

func (b *Backend) winogradConv(y, x, w []float32, g convGeom, e *normEpilogue) {
	panic("cpu: winograd convolution in a build without cgo")
}

func (b *Backend) winogradGradFilter(dw, dy, x []float32, g convGeom, beta float32) {
	panic("cpu: winograd filter gradient in a build without cgo")
}
