//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "elementwise.h"
import "C"

// addReLU is addReLUGo in elementwise.c.
func addReLU(y, a, c []float32) {
	if len(a) < len(y) || len(c) < len(y) {
		panic("cpu: add+ReLU of shorter inputs")
	}
	C.swav_add_relu(fptr(y), fptr(a), fptr(c), C.long(len(y)))
}

// reluBackward is reluBackwardGo in elementwise.c.
func reluBackward(dx, dy, y []float32) {
	if len(dy) < len(dx) || len(y) < len(dx) {
		panic("cpu: ReLU backward of shorter inputs")
	}
	C.swav_relu_backward(fptr(dx), fptr(dy), fptr(y), C.long(len(dx)))
}

// axpy is axpyGo in elementwise.c.
func axpy(y []float32, alpha float32, x []float32) {
	if len(x) < len(y) {
		panic("cpu: axpy of a shorter input")
	}
	C.swav_axpy(fptr(y), C.float(alpha), fptr(x), C.long(len(y)))
}
