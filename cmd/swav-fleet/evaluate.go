package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/swavd/swavd/augment"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/daemon"
	"github.com/swavd/swavd/evaluate"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/codebook"
	"github.com/swavd/swavd/fleet/server"
)

// Evaluation is what `swav-fleet evaluate` measures: labelled test images
// go through each device's own model (from its newest snapshot, shared with
// fleet.share: model) to a device cluster, and through the codebook to a
// fleet cluster.
type Evaluation struct {
	Codebook  string    `json:"codebook"`
	Forced    bool      `json:"forced_merge"`
	FleetK    int       `json:"fleet_clusters"`
	Pairs     int       `json:"pairs"`     // (device, image) pairs
	NMIFleet  float64   `json:"nmi_fleet"` // fleet clusters against the labels
	NMINaive  float64   `json:"nmi_naive"` // device clusters, prefixed by device, against the labels
	ARIFleet  float64   `json:"ari_fleet"` //
	ARINaive  float64   `json:"ari_naive"` //
	Agreement []Agree   `json:"agreement"` // classes seen by more than one device
	Devices   []DevEval `json:"devices"`
}

// Agree is, for the test images of one class seen by two devices, the
// share that both devices send to the same fleet cluster.
type Agree struct {
	Class   int      `json:"class"`
	Devices []string `json:"devices"`
	Images  int      `json:"images"`
	Same    float64  `json:"same_fleet_cluster"`
}

// DevEval is one device's part.
type DevEval struct {
	Device  string  `json:"device"`
	Labels  []int   `json:"labels"`
	Step    int     `json:"step"`
	Images  int     `json:"images"`
	Aligned bool    `json:"aligned"`
	Drift   float64 `json:"drift"`
	NMI     float64 `json:"nmi_device"` // its own clusters against the labels
}

type evalDevice struct {
	id     string
	labels map[int]bool
	order  []int
	digest string
	snap   *fleet.Snapshot
	asg    *daemon.Assigner
	cfg    *config.Config
}

func evaluateCmd(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("evaluate", pflag.ContinueOnError)
	base := fs.String("server", envOr("SWAV_FLEET_SERVER", "http://127.0.0.1:8470"), "the fleet server's HTTP API")
	test := fs.String("test", "idx:/usr/share/datasets/fashion-mnist/t10k", "labelled test images")
	force := fs.Bool("force-merge", false, "merge devices that are not on a common base (to show what that gives)")
	asJSON := fs.Bool("json", false, "print JSON")
	clusters := fs.Int("clusters", 0, "fleet clusters (default: the server's codebook.clusters)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: swav-fleet evaluate [--test idx:PREFIX] [--force-merge] DEVICE=LABEL,LABEL... ...")
	}
	c := &client{base: *base}
	var devs []*evalDevice
	for _, arg := range fs.Args() {
		d, err := loadEvalDevice(c, arg)
		if err != nil {
			return err
		}
		defer d.asg.Close()
		devs = append(devs, d)
	}
	var served codebook.Codebook
	if err := c.getJSON("/v1/codebook", &served); err != nil {
		return err
	}
	if *clusters > 0 {
		served.Options.Clusters = *clusters
	}
	ev, err := runEvaluation(devs, *test, served, *force)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, ev)
	}
	return printEvaluation(stdout, ev)
}

func loadEvalDevice(c *client, arg string) (*evalDevice, error) {
	id, list, ok := strings.Cut(arg, "=")
	if !ok || list == "" {
		return nil, fmt.Errorf("%q: want DEVICE=LABEL,LABEL,...", arg)
	}
	d := &evalDevice{id: id, labels: map[int]bool{}}
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: label %q", arg, f)
		}
		d.labels[n] = true
		d.order = append(d.order, n)
	}
	var v server.DeviceView
	if err := c.getJSON("/v1/devices/"+id, &v); err != nil {
		return nil, err
	}
	b, err := c.get("/v1/snapshots/" + v.Digest)
	if err != nil {
		return nil, err
	}
	if d.snap, err = fleet.ParseSnapshot(b, 0); err != nil {
		return nil, err
	}
	d.digest = v.Digest
	if len(d.snap.Model) == 0 {
		return nil, fmt.Errorf("device %s does not share its model (fleet.share: model): its clusters cannot be computed here", id)
	}
	if d.cfg, err = config.Load(config.Options{Preset: d.snap.Meta.Preset}); err != nil {
		return nil, err
	}
	if arch, _ := json.Marshal(d.cfg.Model); string(arch) != d.snap.Meta.Arch {
		return nil, fmt.Errorf("device %s: its architecture is not preset %s's", id, d.snap.Meta.Preset)
	}
	if d.asg, err = daemon.NewAssigner(d.cfg); err != nil {
		return nil, err
	}
	if err := d.asg.LoadWeights(d.snap.Model, d.snap.Meta.Step); err != nil {
		d.asg.Close()
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	return d, nil
}

func runEvaluation(devs []*evalDevice, testSpec string, served codebook.Codebook, force bool) (*Evaluation, error) {
	o := codebook.Options{Clusters: served.Options.Clusters, MinCount: served.Options.MinCount, Base: served.Base,
		K: devs[0].snap.Meta.K, D: devs[0].snap.Meta.D}
	var inputs []codebook.Input
	for _, d := range devs {
		snap := d.snap
		if force {
			cp := *snap
			cp.Meta.Base = "forced-merge"
			snap = &cp
		}
		inputs = append(inputs, codebook.Input{Device: d.id, Digest: d.digest, Snapshot: snap})
	}
	if force {
		o.Base = "forced-merge"
	}
	cb := codebook.Build(inputs, o)
	byDevice := map[string]codebook.Device{}
	for _, d := range cb.Devices {
		byDevice[d.Device] = d
	}
	ds, err := capture.Open(testSpec, 0)
	if err != nil {
		return nil, err
	}
	ev := &Evaluation{Codebook: cb.Digest, Forced: force, FleetK: len(cb.Clusters)}
	var fleetIDs, naiveIDs, labels []int
	fleetOf := make([]map[string]int, len(ds.Images)) // image -> device -> fleet cluster
	for di, d := range devs {
		al := byDevice[d.id]
		de := DevEval{Device: d.id, Labels: d.order, Step: d.snap.Meta.Step, Aligned: al.Aligned, Drift: al.Drift}
		var own, ownLabels []int
		for i, im := range ds.Images {
			if !d.labels[im.Label] {
				continue
			}
			fit := augment.Fit(im, d.cfg.Input.Size, d.cfg.Input.Channels)
			cl, _, _, err := d.asg.Assign(fit, nil)
			if err != nil {
				return nil, err
			}
			f := -1
			if al.Aligned {
				f = al.Map[cl]
			}
			fleetIDs, naiveIDs, labels = append(fleetIDs, f), append(naiveIDs, di*d.snap.Meta.K+cl), append(labels, im.Label)
			own, ownLabels = append(own, cl), append(ownLabels, im.Label)
			if fleetOf[i] == nil {
				fleetOf[i] = map[string]int{}
			}
			fleetOf[i][d.id] = f
		}
		de.Images, de.NMI = len(own), evaluate.NMI(own, ownLabels)
		ev.Devices = append(ev.Devices, de)
	}
	ev.Pairs = len(labels)
	ev.NMIFleet, ev.NMINaive = evaluate.NMI(fleetIDs, labels), evaluate.NMI(naiveIDs, labels)
	ev.ARIFleet, ev.ARINaive = evaluate.ARI(fleetIDs, labels), evaluate.ARI(naiveIDs, labels)
	// Classes seen by two devices: do both send an image to one fleet cluster?
	seenBy := map[int][]string{}
	for _, d := range devs {
		for _, l := range d.order {
			seenBy[l] = append(seenBy[l], d.id)
		}
	}
	var classes []int
	for l, ids := range seenBy {
		if len(ids) > 1 {
			classes = append(classes, l)
		}
	}
	sort.Ints(classes)
	for _, l := range classes {
		a := Agree{Class: l, Devices: seenBy[l]}
		same := 0
		for i, im := range ds.Images {
			if im.Label != l {
				continue
			}
			a.Images++
			f0 := fleetOf[i][seenBy[l][0]]
			if f0 >= 0 && fleetOf[i][seenBy[l][1]] == f0 {
				same++
			}
		}
		if a.Images > 0 {
			a.Same = float64(same) / float64(a.Images)
		}
		ev.Agreement = append(ev.Agreement, a)
	}
	return ev, nil
}

func printEvaluation(w io.Writer, ev *Evaluation) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	how := "devices on the fleet base"
	if ev.Forced {
		how = "forced merge of devices NOT on a common base"
	}
	fmt.Fprintf(tw, "codebook %.12s (%s): %d fleet clusters, %d (device, image) pairs\n", ev.Codebook, how, ev.FleetK, ev.Pairs)
	fmt.Fprintf(tw, "NMI against the labels\tfleet clusters %.3f\tnaive (device clusters by device) %.3f\n", ev.NMIFleet, ev.NMINaive)
	fmt.Fprintf(tw, "ARI against the labels\tfleet clusters %.3f\tnaive %.3f\n", ev.ARIFleet, ev.ARINaive)
	for _, a := range ev.Agreement {
		fmt.Fprintf(tw, "class %d (%s)\t%d images\tsame fleet cluster %.1f%% (naive 0%%)\n", a.Class, strings.Join(a.Devices, ", "), a.Images, 100*a.Same)
	}
	fmt.Fprintln(tw, "DEVICE\tLABELS\tSTEP\tIMAGES\tOWN NMI\tALIGNED\tDRIFT")
	for _, d := range ev.Devices {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%.3f\t%v\t%.3f\n", d.Device, d.Labels, d.Step, d.Images, d.NMI, d.Aligned, d.Drift)
	}
	return tw.Flush()
}
