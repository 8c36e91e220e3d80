package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/model"
)

// SetBase checks a `swavd train` checkpoint (checkpoint.safetensors) and
// publishes it as the fleet's base.
func (s *Server) SetBase(ctx context.Context, data []byte) (*Base, error) {
	if len(data) > s.o.MaxSnapshotBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "base of %d bytes is over max_snapshot_bytes (%d): devices could not receive it", len(data), s.o.MaxSnapshotBytes)
	}
	_, meta, err := model.ParseCheckpoint(data)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "not a swavd checkpoint: %v", err)
	}
	arch, _ := json.Marshal(meta.Arch)
	b := Base{Digest: fleet.Digest(data), Preset: meta.Preset, Arch: string(arch), Step: meta.Step, Bytes: len(data), SetAt: time.Now().UTC()}
	if err := s.store.SetBase(ctx, b, data); err != nil {
		return nil, err
	}
	s.o.Log.Infof("fleet: base %s set (preset %s, step %d, %d bytes)", b.Digest, b.Preset, b.Step, b.Bytes)
	return &b, nil
}

// sendBase delivers the fleet's base to a device that asked for it; the
// device checks the digest again and answers whether it loaded it.
func (s *Server) sendBase(id string) {
	s.mu.Lock()
	if s.sendingBase[id] {
		s.mu.Unlock()
		return
	}
	s.sendingBase[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sendingBase, id)
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.o.PullTimeout)
	defer cancel()
	b, data, err := s.store.Base(ctx, true)
	if err != nil || b == nil {
		return // no base yet: the device waits and asks again
	}
	msg := nats.NewMsg(fleet.BaseSubject(id))
	msg.Header.Set(fleet.HeaderDigest, b.Digest)
	msg.Data = data
	reply, err := s.nc.RequestMsgWithContext(ctx, msg)
	var derr error
	switch {
	case err != nil:
		derr = fmt.Errorf("sending base %s: %w", b.Digest, err)
	case reply.Header.Get(fleet.HeaderStatus) != fleet.StatusLoaded:
		derr = fmt.Errorf("device refused base %s: %s", b.Digest, reply.Header.Get(fleet.HeaderError))
	}
	if derr != nil {
		s.o.Log.Warnf("fleet: device %s: %v", id, derr)
	} else {
		s.o.Log.Infof("fleet: device %s loaded base %s", id, b.Digest)
	}
	s.store.UpdateDevice(ctx, id, func(d *Device) error {
		if derr != nil {
			d.BaseError = derr.Error()
		} else {
			d.Base, d.WantsBase, d.BaseError = b.Digest, false, ""
		}
		return nil
	})
}

func (s *Server) handleSetBase(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.o.MaxSnapshotBytes)+1))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "base over max_snapshot_bytes (%d)", s.o.MaxSnapshotBytes)
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	b, err := s.SetBase(r.Context(), data)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) handleGetBase(w http.ResponseWriter, r *http.Request) error {
	b, _, err := s.store.Base(r.Context(), false)
	if err != nil {
		return err
	}
	if b == nil {
		return errorf(http.StatusNotFound, "no base set (swav-fleet base set CHECKPOINT_DIR)")
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}
