package gl

import (
	"fmt"

	"github.com/swavd/swavd/compute"
)

// Per-channel vectors are packed into one parameter buffer so that no
// batch-norm pass binds more than four buffers; these are their slots.
const (
	slotGamma = iota
	slotBeta
	slotMean
	slotInv
	slotVar
	slotS1
	slotS2
	nSlots
)

func bnUniforms(C, M int) []uni {
	return []uni{ui("CH", C), ui("MC", M), ui("pGamma", slotGamma*C), ui("pBeta", slotBeta*C), ui("pMean", slotMean*C),
		ui("pInv", slotInv*C), ui("pVar", slotVar*C), ui("pS1", slotS1*C), ui("pS2", slotS2*C)}
}

// packed gathers tensors into the slots of a new parameter buffer.
func (b *Backend) packed(C int, slots map[int]compute.Tensor) *Tensor {
	p := b.scratch(nSlots * C)
	for s, t := range slots {
		gt := tensorOf(t)
		b.postCopy(p.buf, s*C, gt.buf, gt.off, C)
	}
	return p
}

// runPerChannel dispatches a batch-norm pass over C channels of M values:
// a row of workgroups per channel (y), a grid-stride loop along it (x).
func (b *Backend) runPerChannel(op string, C, M int, ts []compute.Tensor, us ...uni) {
	if C > b.ctx.info.Limits.MaxGroupCount[1] {
		panic(fmt.Sprintf("gl: batch norm of %d channels exceeds the dispatch limits %v", C, b.ctx.info.Limits.MaxGroupCount))
	}
	b.dispatch(progID{"batchnorm", op, -1}, (M+b.wg-1)/b.wg, C, 1, ts, us)
}

// unpack copies a slot of p into t.
func (b *Backend) unpack(t compute.Tensor, p *Tensor, slot, C int) {
	gt := tensorOf(t)
	b.postCopy(gt.buf, gt.off, p.buf, slot*C, C)
}

func (b *Backend) BatchNormTrain(y, x, gamma, beta, mean, invStd, runMean, runVar compute.Tensor, momentum, eps float32, relu bool) {
	C := x.Shape()[0]
	M := x.Len() / C
	p := b.packed(C, map[int]compute.Tensor{slotGamma: gamma, slotBeta: beta})
	defer b.Release(p)
	us := append(bnUniforms(C, M), uf("eps", eps), uf("momentum", momentum), ub("relu", relu))
	b.runGroups("batchnorm", "STATS", C, ts(p, x), us...)
	b.run("batchnorm", "RUNNING", C, ts(p, runMean, runVar), us...)
	b.runPerChannel("NORMALIZE", C, M, ts(y, x, p), us...)
	b.unpack(mean, p, slotMean, C)
	b.unpack(invStd, p, slotInv, C)
}

func (b *Backend) BatchNormInfer(y, x, gamma, beta, runMean, runVar compute.Tensor, eps float32, relu bool) {
	C := x.Shape()[0]
	M := x.Len() / C
	p := b.packed(C, map[int]compute.Tensor{slotGamma: gamma, slotBeta: beta})
	defer b.Release(p)
	us := append(bnUniforms(C, M), uf("eps", eps), ub("relu", relu))
	b.run("batchnorm", "INFER_PREP", C, ts(p, runMean, runVar), us...)
	b.runPerChannel("NORMALIZE", C, M, ts(y, x, p), us...)
}

func (b *Backend) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, invStd compute.Tensor, relu bool) {
	C := x.Shape()[0]
	M := x.Len() / C
	p := b.packed(C, map[int]compute.Tensor{slotGamma: gamma, slotMean: mean, slotInv: invStd})
	defer b.Release(p)
	g := dy
	if relu {
		m := b.Empty(dy.Shape()...)
		defer b.Release(m)
		b.ReLUBackward(m, dy, y)
		g = m
	}
	us := bnUniforms(C, M)
	b.runGroups("batchnorm", "BACKWARD_SUMS", C, ts(p, g, x), us...)
	b.runPerChannel("BACKWARD_DX", C, M, ts(dx, g, x, p), us...)
	b.Axpy(dgamma, 1, b.View(p, slotS2*C, C))
	b.Axpy(dbeta, 1, b.View(p, slotS1*C, C))
}
