package model

import (
	"fmt"
	"math"

	"github.com/swavd/swavd/compute"
)

// SwAV configures the objective (Caron et al. 2020).
type SwAV struct {
	Temperature     float64 `mapstructure:"temperature"`
	Epsilon         float64 `mapstructure:"epsilon"`
	SinkhornIters   int     `mapstructure:"sinkhorn_iterations"`
	CropsForAssign  []int   `mapstructure:"crops_for_assign"`
	QueueLength     int     `mapstructure:"queue_length"`
	QueueFromStep   int     `mapstructure:"queue_from_step"` // first step that may use the queue
	FreezePrototype int     `mapstructure:"freeze_prototypes_steps"`
}

// Queue keeps recent embeddings of each assigned crop, [D, Length] each,
// as a ring. Sinkhorn sees them beside the batch so that small batches
// still split evenly over many prototypes. As in the official code it is
// used only once full.
type Queue struct {
	Emb    []compute.Tensor
	Pos    int // next column to write
	Filled int // columns written so far, up to Length
	Length int
}

// Full reports whether every slot holds an embedding.
func (q *Queue) Full() bool { return q.Filled >= q.Length }

// swavLoss computes the swapped-prediction loss over all crops and its
// gradient with respect to the scores. scores is [nCrops*B, K], crop-major;
// z is [D, nCrops*B]. It returns the loss tensor [1] and dS, both live
// until ctx.Free. When useQueue, the queue's scores join Sinkhorn; when
// fill, the assigned crops' embeddings are pushed into it afterwards.
func swavLoss(ctx *Ctx, cfg SwAV, scores, z, protos compute.Tensor, nCrops, B int, q *Queue, useQueue, fill bool) (loss, dS compute.Tensor) {
	be := ctx.Be
	K := scores.Shape()[1]
	loss = ctx.New(1)
	dS = ctx.New(nCrops*B, K)
	crop := func(t compute.Tensor, v int) compute.Tensor { return be.View(t, v*B*K, B, K) }
	weight := float32(1 / float64(len(cfg.CropsForAssign)*(nCrops-1)))
	for i, a := range cfg.CropsForAssign {
		var codes compute.Tensor
		if useQueue {
			n := B + q.Length
			all := ctx.Empty(n, K)
			be.Copy(be.View(all, 0, B, K), crop(scores, a))
			be.MatMul(be.View(all, B*K, q.Length, K), q.Emb[i], protos, true, true, 1, 0)
			qAll := ctx.Empty(n, K)
			be.Sinkhorn(qAll, all, float32(cfg.Epsilon), cfg.SinkhornIters)
			codes = be.View(qAll, 0, B, K)
		} else {
			codes = ctx.Empty(B, K)
			be.Sinkhorn(codes, crop(scores, a), float32(cfg.Epsilon), cfg.SinkhornIters)
		}
		if fill {
			be.CopyColumns(q.Emb[i], q.Pos, z, a*B, B)
		}
		for v := 0; v < nCrops; v++ {
			if v != a {
				be.SwappedCE(loss, crop(dS, v), crop(scores, v), codes, float32(cfg.Temperature), weight)
			}
		}
	}
	if fill {
		q.Pos = (q.Pos + B) % q.Length
		q.Filled = min(q.Filled+B, q.Length)
	}
	return loss, dS
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

func checkSwAV(cfg SwAV, nCrops, B int) error {
	if len(cfg.CropsForAssign) == 0 {
		return fmt.Errorf("model: swav.crops_for_assign is empty")
	}
	for _, a := range cfg.CropsForAssign {
		if a < 0 || a >= nCrops {
			return fmt.Errorf("model: swav.crops_for_assign has crop %d, only %d crops", a, nCrops)
		}
	}
	if cfg.QueueLength > 0 && cfg.QueueLength%B != 0 {
		return fmt.Errorf("model: swav.queue_length %d is not a multiple of the batch size %d", cfg.QueueLength, B)
	}
	return nil
}
