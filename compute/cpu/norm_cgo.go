//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "norm.h"
import "C"

// rowMoments is rowMomentsGo in norm.c.
func rowMoments(row []float32) (sum, ss float64) {
	var s, q C.double
	C.swav_row_moments(fptr(row), C.long(len(row)), &s, &q)
	return float64(s), float64(q)
}

// normalizeRow is normalizeRowGo in norm.c.
func normalizeRow(dst, src, res []float32, mu, scale, shift float32, relu bool) {
	if len(dst) < len(src) || (res != nil && len(res) < len(src)) {
		panic("cpu: normalizeRow with a shorter row")
	}
	var rp *C.float
	if res != nil {
		rp = fptr(res)
	}
	C.swav_normalize_row(fptr(dst), fptr(src), rp, C.long(len(src)), C.float(mu), C.float(scale), C.float(shift), cbool(relu))
}

// bnBackwardRow is bnBackwardRowGo in norm.c.
func bnBackwardRow(dx, x, dy, y []float32, mu, is, k float32) (sg, sgx float64) {
	if len(dx) < len(x) || len(dy) < len(x) || (y != nil && len(y) < len(x)) {
		panic("cpu: batch norm backward rows of different lengths")
	}
	var yp *C.float
	if y != nil {
		yp = fptr(y)
	}
	var s, t C.double
	C.swav_bn_backward_row(fptr(dx), fptr(x), fptr(dy), yp, C.long(len(x)), C.float(mu), C.float(is), C.float(k), &s, &t)
	return float64(s), float64(t)
}
