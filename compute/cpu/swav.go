package cpu

import (
	"math"

	"github.com/swavd/swavd/compute"
)

func (b *Backend) Sinkhorn(q, scores compute.Tensor, epsilon float32, iters int) {
	B, K := rowsOf(scores)
	sd, qd := data(scores), data(q)
	// Subtracting the global maximum keeps exp finite in float32 and,
	// because Q is divided by its total right after, changes nothing else.
	mx := sd[0]
	for _, v := range sd {
		mx = max(mx, v)
	}
	var total float64
	for i, v := range sd {
		e := math.Exp(float64(v-mx) / float64(epsilon))
		qd[i] = float32(e)
		total += e
	}
	inv := float32(1 / total)
	for i := range qd {
		qd[i] *= inv
	}
	colSum := make([]float64, K)
	for it := 0; it < iters; it++ {
		// Each prototype (column) gets mass 1/K ...
		clear(colSum)
		for r := 0; r < B; r++ {
			for k, v := range qd[r*K : (r+1)*K] {
				colSum[k] += float64(v)
			}
		}
		for r := 0; r < B; r++ {
			row := qd[r*K : (r+1)*K]
			for k := range row {
				row[k] = float32(float64(row[k]) / (colSum[k] * float64(K)))
			}
		}
		// ... and each sample (row) mass 1/B.
		for r := 0; r < B; r++ {
			row := qd[r*K : (r+1)*K]
			var s float64
			for _, v := range row {
				s += float64(v)
			}
			f := 1 / (s * float64(B))
			for k := range row {
				row[k] = float32(float64(row[k]) * f)
			}
		}
	}
	for i := range qd {
		qd[i] *= float32(B)
	}
}

// logSoftmaxRow writes log softmax(z*invT) into out and returns nothing;
// computed in float64 for the loss to match the reference closely.
func logSoftmaxRow(out []float64, z []float32, invT float64) {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, float64(v)*invT)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v)*invT - mx)
	}
	lse := mx + math.Log(s)
	for k, v := range z {
		out[k] = float64(v)*invT - lse
	}
}

func (b *Backend) SwappedCE(loss, grad, scores, codes compute.Tensor, temperature, weight float32) {
	B, K := rowsOf(scores)
	sd, cd, gd := data(scores), data(codes), data(grad)
	invT := 1 / float64(temperature)
	logp := make([]float64, K)
	var total float64
	g := float64(weight) * invT / float64(B)
	for r := 0; r < B; r++ {
		logSoftmaxRow(logp, sd[r*K:(r+1)*K], invT)
		q := cd[r*K : (r+1)*K]
		var qs float64
		for k, lp := range logp {
			total -= float64(q[k]) * lp
			qs += float64(q[k])
		}
		gr := gd[r*K : (r+1)*K]
		for k, lp := range logp {
			gr[k] += float32(g * (math.Exp(lp)*qs - float64(q[k])))
		}
	}
	data(loss)[0] += float32(float64(weight) * total / float64(B))
}

func (b *Backend) SoftmaxRows(p, scores compute.Tensor, temperature float32) {
	B, K := rowsOf(scores)
	sd, pd := data(scores), data(p)
	logp := make([]float64, K)
	for r := 0; r < B; r++ {
		logSoftmaxRow(logp, sd[r*K:(r+1)*K], 1/float64(temperature))
		for k, lp := range logp {
			pd[r*K+k] = float32(math.Exp(lp))
		}
	}
}

func (b *Backend) SGDStep(w, g, m compute.Tensor, p compute.SGDParams) {
	wd, gd, md := data(w), data(g), data(m)
	scale, decay := float32(1), p.WeightDecay
	if p.LARS {
		var wn, gn float64
		for i, v := range wd {
			wn += float64(v) * float64(v)
			gn += float64(gd[i]) * float64(gd[i])
		}
		wn, gn = math.Sqrt(wn), math.Sqrt(gn)
		if wn > 0 && gn > 0 {
			scale = float32(float64(p.TrustCoef) * wn / (gn + float64(p.WeightDecay)*wn))
		}
	}
	parallel(len(wd), elementGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := (gd[i] + decay*wd[i]) * scale
			md[i] = p.Momentum*md[i] + d
			wd[i] -= p.LR * md[i]
		}
	})
}
