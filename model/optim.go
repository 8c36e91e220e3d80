package model

import (
	"math"

	"github.com/swavd/swavd/compute"
)

// Optim configures the optimizer and the learning-rate schedule.
type Optim struct {
	Name        string  `mapstructure:"name"` // sgd or lars
	LR          float64 `mapstructure:"lr"`
	Momentum    float64 `mapstructure:"momentum"`
	WeightDecay float64 `mapstructure:"weight_decay"`
	TrustCoef   float64 `mapstructure:"trust_coef"` // LARS only
	WarmupSteps int     `mapstructure:"warmup_steps"`
	Schedule    string  `mapstructure:"schedule"` // constant or cosine
	// Cosine decays from LR to FinalLR over TotalSteps (after warm-up).
	FinalLR    float64 `mapstructure:"final_lr"`
	TotalSteps int     `mapstructure:"total_steps"`
}

// LearningRate at step (0-based): linear warm-up from 0, then constant or
// cosine.
func (o Optim) LearningRate(step int) float64 {
	if step < o.WarmupSteps {
		return o.LR * float64(step) / float64(o.WarmupSteps)
	}
	if o.Schedule != "cosine" {
		return o.LR
	}
	span := o.TotalSteps - o.WarmupSteps
	t := float64(step-o.WarmupSteps) / float64(max(span, 1))
	t = math.Min(t, 1)
	return o.FinalLR + 0.5*(o.LR-o.FinalLR)*(1+math.Cos(math.Pi*t))
}

func (o Optim) sgd(lr float64) compute.SGDParams {
	return compute.SGDParams{
		LR: float32(lr), Momentum: float32(o.Momentum), WeightDecay: float32(o.WeightDecay),
		LARS: o.Name == "lars", TrustCoef: float32(o.TrustCoef),
	}
}
