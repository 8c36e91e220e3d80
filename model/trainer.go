package model

import (
	"errors"
	"fmt"
	"time"

	"github.com/swavd/swavd/compute"
)

// Batch is one training batch of multi-crop views in host memory, each
// resolution group channel-major [C, crops*B, H, W], crop-major inside
// (image crop*B+b is crop `crop` of sample b).
type Batch struct {
	B                     int
	Global, Local         []float32
	NGlobal, NLocal       int
	GlobalSize, LocalSize int
}

// StepStats describes one training step.
type StepStats struct {
	Step     int // the step this was (0-based)
	Loss     float64
	LR       float64
	Queue    bool // the queue joined Sinkhorn
	Forward  time.Duration
	Sinkhorn time.Duration // Sinkhorn and the swapped loss
	Backward time.Duration
	Update   time.Duration
}

// ErrNonFinite reports a step whose loss was NaN or Inf: it was discarded
// and the last good weights restored.
var ErrNonFinite = errors.New("loss is not finite")

// Trainer owns a model and its optimizer state and runs SwAV steps.
type Trainer struct {
	M     *Model
	SwAV  SwAV
	Optim Optim
	Step  int
	Queue *Queue
	// good holds the state at the start of the last step whose loss was
	// finite, and pending the state at the start of the current step:
	// weights are only known good once they have given a finite loss.
	good, pending snapshot
	live          []compute.Tensor // the tensors snapshots mirror, in order
	// TimePhases makes StepStats' phase durations exact on asynchronous
	// backends by waiting for each phase to finish (bench sets it).
	TimePhases bool
	// DelayLoss, on a backend that reads asynchronously (GL), leaves each
	// step's loss in flight behind a fence and settles it at the start of
	// the next step (or on Settle), so the device never waits for the CPU
	// between steps. TrainStep then reports the previous step.
	DelayLoss bool
	inflight  *inflight
	// Adapt says what a step learns: everything (AdaptAll), or only the
	// prototypes (AdaptPrototypes). See Adapt.
	Adapt Adapt
}

// Adapt is what training changes.
type Adapt int

const (
	// AdaptAll trains the encoder, the head and the prototypes.
	AdaptAll Adapt = iota
	// AdaptPrototypes trains only the prototypes: the encoder and head run
	// as at inference (batch norm on its running statistics, which stay
	// as loaded), so features stay in the space they were loaded with. A
	// fleet device on the fleet's base uses it: continued SwAV training of
	// the encoder re-partitions the data within tens of steps, and then
	// the device's clusters no longer compare with other devices'.
	AdaptPrototypes
)

// ParseAdapt reads "all" or "prototypes".
func ParseAdapt(s string) (Adapt, error) {
	switch s {
	case "all":
		return AdaptAll, nil
	case "prototypes":
		return AdaptPrototypes, nil
	}
	return AdaptAll, fmt.Errorf("model: adapt %q: want all or prototypes", s)
}

func (a Adapt) String() string {
	if a == AdaptPrototypes {
		return "prototypes"
	}
	return "all"
}

// inflight is a step whose loss is still being read.
type inflight struct {
	p  compute.Pending
	st StepStats
}

// NewTrainer prepares training of m with batch size b and nCrops crops per sample.
func NewTrainer(m *Model, s SwAV, o Optim, b, nCrops int) (*Trainer, error) {
	if err := checkSwAV(s, nCrops, b); err != nil {
		return nil, err
	}
	t := &Trainer{M: m, SwAV: s, Optim: o}
	be := m.Backend()
	if s.QueueLength > 0 {
		t.Queue = &Queue{Length: s.QueueLength}
		for range s.CropsForAssign {
			t.Queue.Emb = append(t.Queue.Emb, be.New(m.Arch.ProjDim, s.QueueLength))
		}
	}
	for _, st := range t.State() {
		t.live = append(t.live, st.T)
		t.good.ts = append(t.good.ts, be.New(st.T.Shape()...))
		t.pending.ts = append(t.pending.ts, be.New(st.T.Shape()...))
	}
	t.take(&t.good)
	return t, nil
}

// Named is a tensor with its checkpoint name.
type Named struct {
	Name string
	T    compute.Tensor
}

// State lists every tensor a checkpoint must hold to resume exactly:
// weights, momentum, running statistics and the queue.
func (t *Trainer) State() []Named {
	var out []Named
	for _, p := range t.M.Params() {
		out = append(out, Named{p.Name, p.W})
	}
	for _, p := range t.M.Params() {
		out = append(out, Named{"optim." + p.Name + ".momentum", p.M})
	}
	names, bufs := t.M.Buffers()
	for i, n := range names {
		out = append(out, Named{n, bufs[i]})
	}
	if t.Queue != nil {
		for i, e := range t.Queue.Emb {
			out = append(out, Named{fmt.Sprintf("queue.%d", i), e})
		}
	}
	return out
}

// Close releases the trainer's own tensors (not the model's).
func (t *Trainer) Close() {
	be := t.M.Backend()
	be.Release(t.good.ts...)
	be.Release(t.pending.ts...)
	if t.Queue != nil {
		be.Release(t.Queue.Emb...)
	}
}

// snapshot is a copy of the trainer's whole state.
type snapshot struct {
	ts                  []compute.Tensor
	step, qPos, qFilled int
}

func (t *Trainer) take(s *snapshot) {
	be := t.M.Backend()
	for i, l := range t.live {
		be.Copy(s.ts[i], l)
	}
	s.step = t.Step
	if t.Queue != nil {
		s.qPos, s.qFilled = t.Queue.Pos, t.Queue.Filled
	}
}

func (t *Trainer) restore(s *snapshot) {
	be := t.M.Backend()
	for i, l := range t.live {
		be.Copy(l, s.ts[i])
	}
	t.Step = s.step
	if t.Queue != nil {
		t.Queue.Pos, t.Queue.Filled = s.qPos, s.qFilled
	}
}

// TrainStep runs one SwAV step on b. On a non-finite loss it discards the
// step and restores the state from before the last step whose loss was
// finite (Step goes back with it), and returns ErrNonFinite: the update
// that followed a finite loss may itself be what broke the weights, so
// only weights that have produced a finite loss count as good. The loss is
// read back once, after the update has been issued.
//
// With DelayLoss on an asynchronous backend, the step's loss is settled at
// the start of the next call: the stats returned are those of the step
// before (Step -1 on the first call), and a non-finite loss found then
// undoes that step as above, without running this batch.
func (t *Trainer) TrainStep(b *Batch) (StepStats, error) {
	prev, err := t.Settle()
	if err != nil {
		return prev, err
	}
	m, be := t.M, t.M.Backend()
	st := StepStats{Step: t.Step, LR: t.Optim.LearningRate(t.Step)}
	whole := t.Adapt == AdaptAll
	ctx := &Ctx{Be: be, Train: whole}
	defer ctx.Free()
	nCrops, B, D := b.NGlobal+b.NLocal, b.B, m.Encoder.OutDim
	if nCrops < 2 || len(b.Global) != m.Arch.InputChannels*b.NGlobal*B*b.GlobalSize*b.GlobalSize ||
		len(b.Local) != m.Arch.InputChannels*b.NLocal*B*b.LocalSize*b.LocalSize {
		return st, fmt.Errorf("model: batch does not match its shape (%d+%d crops of %d samples)", b.NGlobal, b.NLocal, B)
	}
	t0 := time.Now()
	t.take(&t.pending)
	be.L2NormalizeRows(m.Prototypes.W)
	for _, p := range t.learned() {
		be.Fill(p.G, 0)
	}
	type group struct {
		cache encoderCache
		n     int
	}
	var groups []group
	feat := ctx.Empty(D, nCrops*B)
	col := 0
	for _, g := range []struct {
		data []float32
		n, s int
	}{{b.Global, b.NGlobal, b.GlobalSize}, {b.Local, b.NLocal, b.LocalSize}} {
		if g.n == 0 {
			continue
		}
		x := ctx.Empty(m.Arch.InputChannels, g.n*B, g.s, g.s)
		be.Upload(x, g.data)
		f, c := m.Encoder.forward(ctx, x)
		be.CopyColumns(feat, col, f, 0, g.n*B)
		groups = append(groups, group{c, g.n * B})
		col += g.n * B
	}
	z, hc := m.Head.forward(ctx, feat)
	scores := ctx.Empty(nCrops*B, m.Arch.Prototypes)
	be.MatMul(scores, z, m.Prototypes.W, true, true, 1, 0)
	t.sync()
	t1 := time.Now()

	var useQueue, fill bool
	if t.Queue != nil {
		fill = t.Step >= t.SwAV.QueueFromStep-t.Queue.Length/B
		useQueue = t.Step >= t.SwAV.QueueFromStep && t.Queue.Full()
	}
	loss, dS := swavLoss(ctx, t.SwAV, scores, z, m.Prototypes.W, nCrops, B, t.Queue, useQueue, fill)
	st.Queue = useQueue
	t.sync()
	t2 := time.Now()
	st.Forward, st.Sinkhorn = t1.Sub(t0), t2.Sub(t1)

	frozen := t.Step < t.SwAV.FreezePrototype
	if !frozen {
		be.MatMul(m.Prototypes.G, dS, z, true, true, 1, 1)
	}
	if whole {
		dz := be.Empty(z.Shape()...)
		be.MatMul(dz, m.Prototypes.W, dS, true, true, 1, 0)
		dfeat := m.Head.backward(ctx, hc, dz)
		be.Release(dz)
		col = 0
		for _, g := range groups {
			df := be.Empty(D, g.n)
			be.CopyColumns(df, 0, dfeat, col, g.n)
			m.Encoder.backward(ctx, g.cache, df)
			be.Release(df)
			col += g.n
		}
		be.Release(dfeat)
	}
	t.sync()
	t3 := time.Now()

	t.carryGradientCheck(ctx, loss)
	p := t.Optim.sgd(st.LR)
	for _, prm := range t.learned() {
		if frozen && prm == m.Prototypes {
			continue
		}
		be.SGDStep(prm.W, prm.G, prm.M, p)
	}
	t.sync()
	st.Backward, st.Update = t3.Sub(t2), time.Since(t3)
	// The loss is read once, at the end, so a GPU backend runs the whole
	// step without a round trip. A non-finite loss undoes this step's update
	// with the rest (see TrainStep).
	if ar, ok := be.(compute.AsyncReader); ok && t.DelayLoss {
		t.inflight = &inflight{p: ar.ReadAsync(loss), st: st}
		t.Step++ // provisional: Settle puts it back with the state if the loss is not finite
		return prev, nil
	}
	var lv [1]float32
	be.Download(lv[:], loss)
	st.Loss = float64(lv[0])
	t.Step++
	return st, t.accept(lv[0])
}

// accept keeps the step whose loss is lv, or undoes it (Step included).
func (t *Trainer) accept(lv float32) error {
	if !finite(lv) {
		t.restore(&t.good)
		return ErrNonFinite
	}
	t.good, t.pending = t.pending, t.good
	return nil
}

// Settle waits for the loss of the step in flight (DelayLoss), keeps or
// undoes that step, and returns its stats; with nothing in flight it
// returns StepStats{Step: -1}. Call it before reading or saving the state.
func (t *Trainer) Settle() (StepStats, error) {
	f := t.inflight
	if f == nil {
		return StepStats{Step: -1}, nil
	}
	t.inflight = nil
	var lv [1]float32
	f.p.Wait(lv[:])
	f.st.Loss = float64(lv[0])
	return f.st, t.accept(lv[0])
}

// carryGradientCheck adds 0 x (the sum of every gradient) to the loss:
// the loss is unchanged if the gradients are finite, and NaN otherwise. A
// NaN can vanish inside the network on a GPU (GLSL's max(NaN, 0), so ReLU,
// may give 0) and leave a finite loss over NaN gradients; this way the one
// value read back per step still tells.
func (t *Trainer) carryGradientCheck(ctx *Ctx, loss compute.Tensor) {
	be := ctx.Be
	sum := ctx.New(1)
	for _, prm := range t.learned() {
		n := prm.G.Len()
		be.SumRows(sum, be.View(prm.G, 0, 1, n), 1)
	}
	be.Axpy(loss, 0, sum)
}

// learned lists the parameters a step changes.
func (t *Trainer) learned() []*Param {
	if t.Adapt == AdaptPrototypes {
		return []*Param{t.M.Prototypes}
	}
	return t.M.Params()
}

// sync waits for the backend when phase timing is on, so that phase
// timings on an asynchronous backend (GL) mean something.
func (t *Trainer) sync() {
	if t.TimePhases {
		t.M.Backend().Finish()
	}
}
