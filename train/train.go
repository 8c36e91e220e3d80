// Package train runs the training loop: sample a batch of images, build
// their multi-crop views, take a SwAV step, repeat. The train and bench
// commands and the daemon's trainer use it.
package train

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/swavd/swavd/augment"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/model"
)

// Session is a model with its trainer and the views that feed it.
type Session struct {
	Cfg     *config.Config
	Model   *model.Model
	Trainer *model.Trainer
	batch   *model.Batch
	imgs    []*capture.Image
}

// NewSession builds a freshly initialized model for cfg on be.
func NewSession(be compute.Backend, cfg *config.Config) (*Session, error) {
	m, err := model.New(be, cfg.Model, cfg.Seed)
	if err != nil {
		return nil, err
	}
	nCrops := cfg.Views.Global.Count + cfg.Views.Local.Count
	t, err := model.NewTrainer(m, cfg.SwAV, cfg.Optim, cfg.Train.Batch, nCrops)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &Session{Cfg: cfg, Model: m, Trainer: t, batch: cfg.Views.NewBatch(cfg.Train.Batch),
		imgs: make([]*capture.Image, cfg.Train.Batch)}, nil
}

// Close releases the session's tensors.
func (s *Session) Close() {
	s.Trainer.Close()
	s.Model.Close()
}

// StepResult is one step's statistics with the augmentation time.
type StepResult struct {
	model.StepStats
	Augment time.Duration
	// Discarded is set when the loss was not finite: the step was thrown
	// away and the last good weights restored.
	Discarded bool
}

// Step samples a batch from data (uniformly, with a generator derived from
// the seed and the step, so a resumed run draws what an unbroken one
// would), builds its views and trains on it.
func (s *Session) Step(data []*capture.Image) (StepResult, error) {
	if len(data) == 0 {
		return StepResult{}, errors.New("train: no images to train on")
	}
	rng := rand.New(rand.NewPCG(s.Cfg.Seed, uint64(s.Trainer.Step)))
	for i := range s.imgs {
		s.imgs[i] = data[rng.IntN(len(data))]
	}
	return s.StepOn(s.imgs)
}

// StepOn trains on exactly these images (train.batch of them, at the
// working size).
func (s *Session) StepOn(imgs []*capture.Image) (StepResult, error) {
	if len(imgs) != s.Cfg.Train.Batch {
		return StepResult{}, fmt.Errorf("train: %d images for a batch of %d", len(imgs), s.Cfg.Train.Batch)
	}
	step := s.Trainer.Step
	t0 := time.Now()
	if err := s.Cfg.Views.Fill(s.batch, imgs, s.Cfg.Seed^uint64(step)<<20); err != nil {
		return StepResult{}, err
	}
	aug := time.Since(t0)
	st, err := s.Trainer.TrainStep(s.batch)
	return s.result(st, err, aug, step)
}

// Settle waits for the step in flight when the trainer reads its loss one
// step late (Trainer.DelayLoss) and returns its result; Step is -1 when
// none was in flight.
func (s *Session) Settle() (StepResult, error) {
	st, err := s.Trainer.Settle()
	return s.result(st, err, 0, st.Step)
}

// result turns a step's stats and error into a StepResult: a non-finite
// loss is a discarded step, not an error; a failed device is one.
func (s *Session) result(st model.StepStats, err error, aug time.Duration, step int) (StepResult, error) {
	r := StepResult{StepStats: st, Augment: aug}
	if err := s.Model.Backend().Err(); err != nil {
		return r, fmt.Errorf("train: step %d: the %s backend failed: %w", step, s.Model.Backend().Name(), err)
	}
	if errors.Is(err, model.ErrNonFinite) {
		r.Discarded = true
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("train: step %d: %w", step, err)
	}
	return r, nil
}

// FitImages brings every image to the working size and channel count.
func FitImages(imgs []*capture.Image, size, channels int) []*capture.Image {
	out := make([]*capture.Image, len(imgs))
	for i, im := range imgs {
		out[i] = augment.Fit(im, size, channels)
	}
	return out
}
