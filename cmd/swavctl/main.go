// Command swavctl is the command-line client of swavd's local API:
//
//	swavctl status                      the daemon's state
//	swavctl clusters [--mosaic F.png]   cluster statistics; a mosaic of exemplars
//	swavctl watch                       live assignments
//	swavctl assign FILE                 the cluster of an image
//	swavctl prototypes pull -o FILE     the current prototypes (safetensors)
//	swavctl fleet snapshot -o FILE      what the fleet gets from this device (safetensors)
//	swavctl fleet rebase                checkpoint, then replace the weights with the fleet's base
//	swavctl checkpoint                  write a checkpoint now
//
// Every command prints for people, or JSON with --json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/swavd/swavd/api"
)

type cli struct {
	client *api.Client
	json   bool
	out    io.Writer
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("swavctl", pflag.ContinueOnError)
	fs.SetInterspersed(true)
	fs.SetOutput(stderr)
	def := os.Getenv("SWAVD_SOCKET")
	if def == "" {
		def = api.DefaultSocket
	}
	socket := fs.String("socket", def, "the daemon's socket ($SWAVD_SOCKET)")
	asJSON := fs.Bool("json", false, "print JSON")
	mosaic := fs.String("mosaic", "", "clusters: write a PNG with a row of exemplars per cluster")
	outFile := fs.StringP("output", "o", "", "prototypes pull, fleet snapshot: file to write")
	count := fs.Int("count", 0, "watch: stop after this many events (0: until interrupted)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: swavctl [--socket PATH] [--json] COMMAND\n\ncommands:\n  status\n  clusters [--mosaic FILE.png]\n  watch [--count N]\n  assign FILE\n  prototypes pull -o FILE\n  fleet snapshot -o FILE\n  fleet rebase\n  checkpoint\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	c := &cli{client: api.NewClient(*socket), json: *asJSON, out: stdout}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	var err error
	switch cmd := rest[0]; {
	case cmd == "status" && len(rest) == 1:
		err = c.status(ctx)
	case cmd == "clusters" && len(rest) == 1:
		err = c.clusters(ctx, *mosaic)
	case cmd == "watch" && len(rest) == 1:
		err = c.watch(ctx, *count)
	case cmd == "assign" && len(rest) == 2:
		err = c.assign(ctx, rest[1])
	case cmd == "prototypes" && len(rest) == 2 && rest[1] == "pull":
		err = c.pullFile(ctx, "prototypes pull", *outFile, c.client.Prototypes)
	case cmd == "fleet" && len(rest) == 2 && rest[1] == "rebase":
		err = c.rebase(ctx)
	case cmd == "fleet" && len(rest) == 2 && rest[1] == "snapshot":
		err = c.pullFile(ctx, "fleet snapshot", *outFile, c.client.FleetSnapshot)
	case cmd == "checkpoint" && len(rest) == 1:
		err = c.checkpoint(ctx)
	default:
		fmt.Fprintf(stderr, "swavctl: unknown command %q\n", strings.Join(rest, " "))
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "swavctl: %v\n", err)
		if api.IsForbidden(err) {
			fmt.Fprintln(stderr, "swavctl: writes need root, swavd's own user or a member of daemon.socket_group")
		}
		return 1
	}
	return 0
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) status(ctx context.Context) error {
	s, err := c.client.Status(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(s)
	}
	w := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "swavd %s\tpreset %s, up %v\n", s.Version, s.Preset, time.Duration(s.UptimeS*float64(time.Second)).Round(time.Second))
	b := s.Backend.Name
	if s.Backend.Fallback != "" {
		b += " (fell back: " + s.Backend.Fallback + ")"
	}
	fmt.Fprintf(w, "backend\t%s\n", b)
	cam := s.Camera
	state := cam.State
	if cam.Format != "" {
		state += ", " + cam.Format
	}
	fmt.Fprintf(w, "camera\t%s: %s\n", cam.Source, state)
	if cam.LastError != "" {
		fmt.Fprintf(w, "\tlast error: %s\n", cam.LastError)
	}
	fmt.Fprintf(w, "frames\t%.1f/s in, %d in, %d assigned, %d dropped, %d corrupt, %d reconnects\n",
		cam.FPSIn, cam.FramesIn, cam.Assigned, cam.Dropped, cam.Corrupt, cam.Reconnects)
	t := s.Training
	fmt.Fprintf(w, "training\t%s: step %d, loss %.4f, lr %.4g, %.0f samples/s, duty %.0f%%\n", t.State, t.Step, t.Loss, t.LR, t.SamplesPS, 100*t.DutyCycle)
	if t.Adapt == "prototypes" {
		fmt.Fprintf(w, "learns\tprototypes only: the encoder stays the fleet base's (fleet.adapt)\n")
	}
	fmt.Fprintf(w, "replay\t%d of %d frames; assigning with step %d\n", t.Replay, t.ReplayCap, t.ModelStep)
	if t.LastError != "" {
		fmt.Fprintf(w, "\tlast error: %s\n", t.LastError)
	}
	u := s.Clusters
	fmt.Fprintf(w, "clusters\t%d of %d used (%d recently), entropy %.2f nats (recent %.2f, uniform %.2f)\n", u.Used, u.K, u.RecentUsed, u.Entropy, u.RecentEntropy, math.Log(float64(u.K)))
	if c := s.LastCheckpoint; c != nil {
		how := ""
		if c.Restored {
			how = " (resumed from)"
		}
		fmt.Fprintf(w, "checkpoint\tstep %d at %s, %s%s\n", c.Step, c.At.Local().Format(time.DateTime), c.Path, how)
	} else {
		fmt.Fprintf(w, "checkpoint\tnone yet\n")
	}
	if s.CheckpointError != "" {
		fmt.Fprintf(w, "\tlast checkpoint failed: %s\n", s.CheckpointError)
	}
	if ev := s.Events; ev.Subscribers > 0 || ev.Lost > 0 {
		fmt.Fprintf(w, "events\t%d streams open, %d events lost to slow readers\n", ev.Subscribers, ev.Lost)
	}
	fl := s.Fleet
	switch fl.State {
	case "", "off":
		fmt.Fprintf(w, "fleet\toff\n")
	default:
		where := fl.URL
		if fl.Server != "" {
			where = fl.Server
		}
		fmt.Fprintf(w, "fleet\t%s, %s as %s: %d pulls (%d unchanged), %d bytes sent\n", fl.State, where, fl.DeviceID, fl.Pulls, fl.Unchanged, fl.BytesSent)
		if fl.LastPull != nil {
			fmt.Fprintf(w, "\tlast pull %s: %s %.12s\n", fl.LastPull.Local().Format(time.DateTime), fl.LastResult, fl.LastDigest)
		}
		if fl.LastError != "" {
			fmt.Fprintf(w, "\tlast error: %s\n", fl.LastError)
		}
		switch {
		case fl.WaitingForBase:
			fmt.Fprintf(w, "\twaiting for the fleet's base model\n")
		case fl.Base != "":
			fmt.Fprintf(w, "\tstarted from fleet base %.12s\n", fl.Base)
		}
		if fl.BaseError != "" {
			fmt.Fprintf(w, "\tlast base refused: %s\n", fl.BaseError)
		}
	}
	return w.Flush()
}

func (c *cli) clusters(ctx context.Context, mosaic string) error {
	cl, err := c.client.Clusters(ctx, mosaic != "")
	if err != nil {
		return err
	}
	sort.Slice(cl.Clusters, func(i, j int) bool { return cl.Clusters[i].Total > cl.Clusters[j].Total })
	if mosaic != "" {
		if err := writeMosaic(mosaic, cl.Clusters); err != nil {
			return err
		}
	}
	if c.json {
		for i := range cl.Clusters {
			cl.Clusters[i].Exemplars = nil
		}
		return c.printJSON(cl)
	}
	w := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "cluster\ttotal\trecent\tconfidence\tlast seen\t\n")
	for _, k := range cl.Clusters {
		seen := "-"
		if k.LastSeen != nil {
			seen = time.Since(*k.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%.3f\t%s\t\n", k.ID, k.Total, k.Recent, k.MeanConf, seen)
	}
	if mosaic != "" {
		fmt.Fprintf(w, "mosaic written to %s\t\t\t\t\t\n", mosaic)
	}
	return w.Flush()
}

func (c *cli) watch(ctx context.Context, count int) error {
	n := 0
	errDone := errors.New("done")
	err := c.client.Events(ctx, func(a api.Assignment) error {
		if c.json {
			b, _ := json.Marshal(a)
			fmt.Fprintln(c.out, string(b))
		} else {
			fmt.Fprintf(c.out, "%s frame %d -> cluster %d (p=%.2f, %.1f ms, step %d)\n",
				a.At.Local().Format("15:04:05.000"), a.Seq, a.Cluster, a.Confidence, a.LatencyMS, a.Step)
		}
		if n++; count > 0 && n >= count {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

func (c *cli) assign(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	a, err := c.client.Assign(ctx, b)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(a)
	}
	fmt.Fprintf(c.out, "%s: cluster %d (p=%.3f, model step %d)\n", path, a.Cluster, a.Confidence, a.Step)
	return nil
}

func (c *cli) rebase(ctx context.Context) error {
	r, err := c.client.Rebase(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.out, "checkpoint at step %d written (%s); %s\n", r.Checkpoint.Step, r.Checkpoint.Path, r.State)
	return nil
}

func (c *cli) pullFile(ctx context.Context, what, out string, fetch func(context.Context) ([]byte, error)) error {
	if out == "" {
		return fmt.Errorf("%s: say where with -o FILE", what)
	}
	b, err := fetch(ctx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"file": out, "bytes": len(b)})
	}
	fmt.Fprintf(c.out, "wrote %s (%d bytes)\n", out, len(b))
	return nil
}

func (c *cli) checkpoint(ctx context.Context) error {
	r, err := c.client.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.out, "checkpoint at step %d: %s (%d bytes)\n", r.Checkpoint.Step, r.Checkpoint.Path, r.Checkpoint.Bytes)
	return nil
}
