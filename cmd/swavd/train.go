package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/train"
)

func runTrain(args []string) error {
	cf := newConfigFlags("train")
	cf.key("train.source", "source", "", "training images: idx:PREFIX or dir:PATH")
	cf.key("train.steps", "steps", "", "train until this many steps in total")
	cf.key("train.batch", "batch", "", "images per batch")
	cf.key("train.log_every", "log-every", "", "log every this many steps")
	out := cf.fs.String("out", "", "checkpoint directory (resumed from when it holds one)")
	limit := cf.fs.Int("limit", 0, "use only the first N images of the source (0: all)")
	if err := cf.fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out DIR is required")
	}
	// A checkpoint fixes the preset unless one is named.
	preset := ""
	_, meta, ckErr := model.ReadCheckpoint(*out)
	resume := ckErr == nil
	if resume && !cf.fs.Changed("preset") {
		preset = meta.Preset
	}
	if !resume && !errors.Is(ckErr, os.ErrNotExist) {
		return fmt.Errorf("%v (move it away to start from scratch)", ckErr)
	}
	cfg, be, err := cf.open(preset)
	if err != nil {
		return err
	}
	defer be.Close()
	data, err := capture.Open(cfg.Train.Source, *limit)
	if err != nil {
		return err
	}
	for _, e := range data.Skipped {
		fmt.Fprintf(os.Stderr, "skipped %v\n", e)
	}
	if len(data.Skipped) > 0 {
		fmt.Fprintf(os.Stderr, "%d unreadable images skipped\n", len(data.Skipped))
	}
	imgs := train.FitImages(data.Images, cfg.Input.Size, cfg.Input.Channels)
	s, err := train.NewSession(be, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if resume {
		if _, err := model.LoadCheckpoint(*out, s.Trainer); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "resumed from %s at step %d\n", *out, s.Trainer.Step)
	}
	fmt.Fprintf(os.Stderr, "swavd %s: preset %s, %s (%d parameters), backend %s, %d images from %s\n",
		version, cfg.Preset, cfg.Model, s.Model.ParamCount(), be.Name(), len(imgs), cfg.Train.Source)
	cfgJSON, _ := json.Marshal(cfg)
	save := func() error {
		err := model.SaveCheckpoint(*out, s.Trainer, model.CheckpointMeta{Version: version, Preset: cfg.Preset, Config: cfgJSON})
		if err != nil {
			fmt.Fprintf(os.Stderr, "checkpoint failed: %v\n", err)
		}
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	progress := term.IsTerminal(int(os.Stderr.Fd()))
	var lossSum float64
	var lossN int
	windowStart := time.Now()
	windowSteps := 0
	// On GL the loss of each step is read while the next one runs
	// (DelayLoss): a result describes the step before, and the step count
	// is provisional until it is settled. Checkpoints settle first, so
	// they fall on exact multiples of train.checkpoint_every.
	s.Trainer.DelayLoss = true
	saved := s.Trainer.Step
	for {
		select {
		case sig := <-stop:
			if r, err := s.Settle(); err != nil {
				return err
			} else if r.Discarded {
				fmt.Fprintf(os.Stderr, "step %d: loss is %v; discarded the step and restored the last good weights\n", r.Step, r.Loss)
			}
			if err := save(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "\n%v: checkpoint at step %d in %s\n", sig, s.Trainer.Step, filepath.Clean(*out))
			return nil
		default:
		}
		var r train.StepResult
		next := s.Trainer.Step
		ce := cfg.Train.CheckpointEvery
		switch {
		case next >= cfg.Train.Steps:
			r, err = s.Settle()
		case ce > 0 && next%ce == 0 && next != saved:
			if r, err = s.Settle(); err == nil && !r.Discarded && s.Trainer.Step == next {
				_ = save() // reported; training goes on
				saved = next
			}
		default:
			r, err = s.Step(imgs)
		}
		if err != nil {
			return err
		}
		if next >= cfg.Train.Steps && !r.Discarded && r.Step < 0 {
			break // every step settled
		}
		if r.Discarded {
			fmt.Fprintf(os.Stderr, "step %d: loss is %v; discarded the step and restored the last good weights\n", r.Step, r.Loss)
			continue
		}
		if r.Step < 0 { // the first delayed step: nothing settled yet
			continue
		}
		lossSum += r.Loss
		lossN++
		windowSteps++
		step := r.Step + 1 // steps done, this one included
		if progress {
			fmt.Fprintf(os.Stderr, "\r%s step %d/%d loss %.4f", bar(step, cfg.Train.Steps, 30), step, cfg.Train.Steps, r.Loss)
		}
		if step%cfg.Train.LogEvery == 0 || step == cfg.Train.Steps {
			el := time.Since(windowStart).Seconds()
			if progress {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			fmt.Fprintf(os.Stderr, "step %d loss %.4f lr %.4f %.1f samples/s%s\n", step, lossSum/float64(lossN), r.LR,
				float64(windowSteps*cfg.Train.Batch)/el, queueNote(r.Queue))
			lossSum, lossN, windowSteps, windowStart = 0, 0, 0, time.Now()
		}
	}
	if err := save(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "checkpoint at step %d in %s\n", s.Trainer.Step, filepath.Clean(*out))
	return nil
}

func queueNote(q bool) string {
	if q {
		return " (queue)"
	}
	return ""
}

func bar(done, total, width int) string {
	n := done * width / max(total, 1)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
