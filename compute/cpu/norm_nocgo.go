//go:build !cgo

package cpu

func rowMoments(row []float32) (sum, ss float64) { return rowMomentsGo(row) }

func normalizeRow(dst, src, res []float32, mu, scale, shift float32, relu bool) {
	normalizeRowGo(dst, src, res, mu, scale, shift, relu)
}

func bnBackwardRow(dx, x, dy, y []float32, mu, is, k float32) (sg, sgx float64) {
	return bnBackwardRowGo(dx, x, dy, y, mu, is, k)
}
