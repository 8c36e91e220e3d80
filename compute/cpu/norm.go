package cpu

import (
	"math"

	"github.com/swavd/swavd/compute"
)

// rowsOf views x as [C, M] with C its first dimension.
func rowsOf(x compute.Tensor) (c, m int) {
	c = x.Shape()[0]
	return c, x.Len() / c
}

func (b *Backend) BatchNormTrain(y, x, gamma, beta, mean, invStd, runMean, runVar compute.Tensor, momentum, eps float32, relu bool) {
	b.batchNormTrain(y, x, nil, gamma, beta, mean, invStd, runMean, runVar, momentum, eps, relu)
}

// BatchNormTrainAddReLU is BatchNormTrain, then y += res and ReLU, in the
// same pass over the row (compute.ResidualNorm).
func (b *Backend) BatchNormTrainAddReLU(y, x, res, gamma, beta, mean, invStd, runMean, runVar compute.Tensor, momentum, eps float32) {
	compute.MustShape("batch norm residual", res, x.Shape()...)
	b.batchNormTrain(y, x, res, gamma, beta, mean, invStd, runMean, runVar, momentum, eps, true)
}

// batchNormTrain is BatchNormTrain with a residual res added before the
// ReLU where res is not nil.
func (b *Backend) batchNormTrain(y, x, res, gamma, beta, mean, invStd, runMean, runVar compute.Tensor, momentum, eps float32, relu bool) {
	C, M := rowsOf(x)
	xd, yd, gd, bd := data(x), data(y), data(gamma), data(beta)
	md, sd, rm, rv := data(mean), data(invStd), data(runMean), data(runVar)
	rd := optionalData(res)
	parallel(C, 1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			row := xd[c*M : (c+1)*M]
			s, ss := rowMoments(row)
			mu := s / float64(M)
			variance := ss / float64(M)
			is := 1 / math.Sqrt(variance+float64(eps))
			md[c], sd[c] = float32(mu), float32(is)
			unbiased := variance
			if M > 1 {
				unbiased = ss / float64(M-1)
			}
			rm[c] = (1-momentum)*rm[c] + momentum*float32(mu)
			rv[c] = (1-momentum)*rv[c] + momentum*float32(unbiased)
			normalizeRow(yd[c*M:(c+1)*M], row, rowOf(rd, c, M), float32(mu), float32(is)*gd[c], bd[c], relu)
		}
	})
}

// optionalData is t's data, nil for no tensor.
func optionalData(t compute.Tensor) []float32 {
	if t == nil {
		return nil
	}
	return data(t)
}

// rowOf is row c of the [C, M] rows d, nil where d is.
func rowOf(d []float32, c, m int) []float32 {
	if d == nil {
		return nil
	}
	return d[c*m : (c+1)*m]
}

// rowMomentsGo returns the sum of row and the sum of its squared
// deviations from the mean, in float64: the build without cgo, and the
// reference for norm.c, as are the other ...Go functions here.
func rowMomentsGo(row []float32) (sum, ss float64) {
	for _, v := range row {
		sum += float64(v)
	}
	mu := sum / float64(len(row))
	for _, v := range row {
		d := float64(v) - mu
		ss += d * d
	}
	return sum, ss
}

// normalizeRowGo computes dst = (src-mu)*scale + shift, plus res where res
// is not nil, then ReLU if relu.
func normalizeRowGo(dst, src, res []float32, mu, scale, shift float32, relu bool) {
	for i, v := range src {
		o := (v-mu)*scale + shift
		if res != nil {
			o += res[i]
		}
		if relu && o < 0 {
			o = 0
		}
		dst[i] = o
	}
}

func (b *Backend) BatchNormInfer(y, x, gamma, beta, runMean, runVar compute.Tensor, eps float32, relu bool) {
	b.batchNormInfer(y, x, nil, gamma, beta, runMean, runVar, eps, relu)
}

// BatchNormInferAddReLU is BatchNormInfer, then y += res and ReLU, in the
// same pass (compute.ResidualNorm).
func (b *Backend) BatchNormInferAddReLU(y, x, res, gamma, beta, runMean, runVar compute.Tensor, eps float32) {
	compute.MustShape("batch norm residual", res, x.Shape()...)
	b.batchNormInfer(y, x, res, gamma, beta, runMean, runVar, eps, true)
}

func (b *Backend) batchNormInfer(y, x, res, gamma, beta, runMean, runVar compute.Tensor, eps float32, relu bool) {
	C, M := rowsOf(x)
	xd, yd, gd, bd, rm, rv := data(x), data(y), data(gamma), data(beta), data(runMean), data(runVar)
	rd := optionalData(res)
	parallel(C, 1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			normalizeRow(yd[c*M:(c+1)*M], xd[c*M:(c+1)*M], rowOf(rd, c, M), rm[c], inferScale(gd, rv, eps, c), bd[c], relu)
		}
	})
}

// inferScale is inference batch norm's multiplier for channel c,
// gamma / sqrt(running variance + eps), shared by the separate pass and
// the convolution's output pass so that both give the same values.
func inferScale(gamma, runVar []float32, eps float32, c int) float32 {
	return float32(1/math.Sqrt(float64(runVar[c])+float64(eps))) * gamma[c]
}

func (b *Backend) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, invStd compute.Tensor, relu bool) {
	C, M := rowsOf(x)
	dxd, dgd, dbd, dyd, xd := data(dx), data(dgamma), data(dbeta), data(dy), data(x)
	gd, md, sd := data(gamma), data(mean), data(invStd)
	var yd []float32 // only the ReLU's mask reads y
	if relu {
		yd = data(y)
	}
	parallel(C, 1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			yr := rowOf(yd, c, M)
			sg, sgx := bnBackwardRow(dxd[c*M:(c+1)*M], xd[c*M:(c+1)*M], dyd[c*M:(c+1)*M], yr, md[c], sd[c], gd[c]*sd[c])
			dgd[c] += float32(sgx)
			dbd[c] += float32(sg)
		}
	})
}

// bnBackwardRowGo is one channel of BatchNormBackward: with g = dy, zero
// where y <= 0 when y is given (the fused ReLU), it returns sg = sum g and
// sgx = sum g*(x-mu)*is, and writes dx = k*(g - sg/M - (x-mu)*is*sgx/M).
func bnBackwardRowGo(dx, x, dy, y []float32, mu, is, k float32) (sg, sgx float64) {
	relu := y != nil
	for i, v := range x {
		g := dy[i]
		if relu && y[i] <= 0 {
			g = 0
		}
		sg += float64(g)
		sgx += float64(g) * float64((v-mu)*is)
	}
	M := float64(len(x))
	mg, mgx := float32(sg/M), float32(sgx/M)
	for i, v := range x {
		g := dy[i]
		if relu && y[i] <= 0 {
			g = 0
		}
		dx[i] = k * (g - mg - (v-mu)*is*mgx)
	}
	return sg, sgx
}

func (b *Backend) L2NormalizeCols(y, norms, x compute.Tensor) {
	xs := x.Shape()
	D, N := xs[0], xs[1]
	xd, yd, nd := data(x), data(y), data(norms)
	for n := 0; n < N; n++ {
		var s float64
		for d := 0; d < D; d++ {
			v := float64(xd[d*N+n])
			s += v * v
		}
		nrm := math.Max(math.Sqrt(s), 1e-12) // F.normalize's eps
		nd[n] = float32(nrm)
		inv := float32(1 / nrm)
		for d := 0; d < D; d++ {
			yd[d*N+n] = xd[d*N+n] * inv
		}
	}
}

func (b *Backend) L2NormalizeColsBackward(dx, dy, y, norms compute.Tensor) {
	ys := y.Shape()
	D, N := ys[0], ys[1]
	dxd, dyd, yd, nd := data(dx), data(dy), data(y), data(norms)
	for n := 0; n < N; n++ {
		var dot float64
		for d := 0; d < D; d++ {
			dot += float64(yd[d*N+n]) * float64(dyd[d*N+n])
		}
		inv, p := 1/nd[n], float32(dot)
		for d := 0; d < D; d++ {
			dxd[d*N+n] = (dyd[d*N+n] - yd[d*N+n]*p) * inv
		}
	}
}

func (b *Backend) L2NormalizeRows(x compute.Tensor) {
	R, C := rowsOf(x)
	xd := data(x)
	for r := 0; r < R; r++ {
		row := xd[r*C : (r+1)*C]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Max(math.Sqrt(s), 1e-12))
		for i := range row {
			row[i] *= inv
		}
	}
}
