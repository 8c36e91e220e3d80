package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/evaluate"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/train"
)

// loadForInference rebuilds the checkpoint's model and configuration on
// the backend the checkpoint's configuration names; close both.
func loadForInference(dir string) (*train.Session, compute.Backend, *config.Config, error) {
	_, meta, err := model.ReadCheckpoint(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := &config.Config{}
	if err := json.Unmarshal(meta.Config, cfg); err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s: configuration: %w", dir, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	c, err := openBackend(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	be := c.Backend
	s, err := train.NewSession(be, cfg)
	if err == nil {
		_, err = model.LoadCheckpoint(dir, s.Trainer)
		if err != nil {
			s.Close()
		}
	}
	if err != nil {
		be.Close()
		return nil, nil, nil, err
	}
	return s, be, cfg, nil
}

func runEval(args []string) error {
	fs := pflag.NewFlagSet("swavd eval", pflag.ContinueOnError)
	ckpt := fs.String("checkpoint", "", "checkpoint directory")
	test := fs.String("test", "idx:/usr/share/datasets/fashion-mnist/t10k", "labelled test images")
	bank := fs.String("bank", "idx:/usr/share/datasets/fashion-mnist/train", "labelled kNN bank images")
	bankN := fs.Int("bank-limit", 10000, "use the first N bank images")
	testN := fs.Int("test-limit", 0, "use the first N test images (0: all)")
	k := fs.Int("k", 20, "neighbours")
	temp := fs.Float64("temperature", 0.07, "vote weight exp(similarity/T)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ckpt == "" {
		return fmt.Errorf("--checkpoint DIR is required")
	}
	s, be, cfg, err := loadForInference(*ckpt)
	if err != nil {
		return err
	}
	defer be.Close()
	defer s.Close()
	load := func(spec string, n int) ([]*capture.Image, error) {
		d, err := capture.Open(spec, n)
		if err != nil {
			return nil, err
		}
		return train.FitImages(d.Images, cfg.Input.Size, cfg.Input.Channels), nil
	}
	bankImgs, err := load(*bank, *bankN)
	if err != nil {
		return err
	}
	testImgs, err := load(*test, *testN)
	if err != nil {
		return err
	}
	r, err := evaluate.Run(s.Model, &cfg.Views, cfg.Views.Global.Size, bankImgs, testImgs, *k, *temp)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Printf("kNN top-1 %.4f (k=%d, bank %d)\nNMI %.4f\nARI %.4f\nnon-empty clusters %d of %d\n",
		r.KNNTop1, *k, r.BankImages, r.NMI, r.ARI, r.NonemptyClusters, cfg.Model.Prototypes)
	return nil
}
