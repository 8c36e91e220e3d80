// Command swav-fleet is the fleet server: it pulls every swavd device's
// learned prototypes over NATS with mTLS (devices dial out; none opens a
// port), stores them once by digest in JetStream, and serves an HTTP API.
//
//	swav-fleet certs init --dir D [--host NAME]...   the fleet CA, server and fleet certificates
//	swav-fleet certs issue --dir D ID                a device's certificate (D/ID.pem, D/ID-key.pem)
//	swav-fleet certs revoke --dir D ID               refuse the device from its next connection on
//	swav-fleet certs nats-config --dir D [-o FILE]   the devices as users of an external NATS cluster
//	swav-fleet serve [--config FILE] [--state-dir DIR] [--certs D] [--nats-listen ADDR] [--nats-url URL] [--http ADDR]
//	swav-fleet devices [--json]                      the inventory (from a running server)
//	swav-fleet pull ID | --all                       pull one device, or every online one, now
//	swav-fleet get ID -o FILE                        a device's newest snapshot
//	swav-fleet base [set CHECKPOINT_DIR]             the fleet's base model: show it, or publish a swavd train checkpoint
//	swav-fleet codebook [--json] [--mosaic F.png]    fleet clusters, their members, each device's alignment and drift
//	swav-fleet label FLEET_CLUSTER NAME              name a fleet cluster ("" removes the name)
//	swav-fleet evaluate DEVICE=LABELS...             score the codebook on labelled images (devices sharing their model)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/pflag"

	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/codebook"
	"github.com/swavd/swavd/fleet/server"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/model"
)

var version = "0.1.0-dev"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: swav-fleet COMMAND
  certs init --dir D [--host NAME]...
  certs issue --dir D ID
  certs revoke --dir D ID
  certs nats-config --dir D [-o FILE]
  serve [--config FILE] [--state-dir DIR] [--certs D] [--nats-listen ADDR] [--nats-url URL] [--http ADDR]
  devices [--json] [--server URL]
  pull ID|--all [--server URL]
  get ID -o FILE [--server URL]
  base [set CHECKPOINT_DIR] [--server URL]
  codebook [--json] [--mosaic FILE.png] [--server URL]
  label FLEET_CLUSTER NAME [--server URL]
  evaluate [--test idx:PREFIX] [--force-merge] [--json] DEVICE=LABEL,... ...
  version`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "certs":
		err = certsCmd(args[1:], stdout)
	case "serve":
		err = serveCmd(args[1:], stderr)
	case "devices", "pull", "get", "base", "codebook", "label":
		err = clientCmd(args[0], args[1:], stdout)
	case "evaluate":
		err = evaluateCmd(args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, "swav-fleet", version)
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "swav-fleet %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func certsCmd(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("certs", pflag.ContinueOnError)
	dir := fs.String("dir", "", "certificate directory")
	hosts := fs.StringSlice("host", nil, "init: a name or address devices use to reach the server (repeatable)")
	out := fs.StringP("output", "o", "", "nats-config: file to write (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if *dir == "" || len(rest) == 0 {
		return errors.New("say what and where: certs init|issue ID|revoke ID|nats-config --dir D")
	}
	switch {
	case rest[0] == "init" && len(rest) == 1:
		if err := certs.Init(*dir, *hosts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "fleet CA, server and fleet certificates in %s; keep %s private\n", *dir, certs.CAKeyFile)
	case rest[0] == "issue" && len(rest) == 2:
		if err := certs.Issue(*dir, rest[1]); err != nil {
			return err
		}
		cert, key := certs.DeviceFiles(*dir, rest[1])
		fmt.Fprintf(stdout, "device %s: %s and %s; give the device these and %s/%s\n", rest[1], cert, key, *dir, certs.CAFile)
	case rest[0] == "revoke" && len(rest) == 2:
		if err := certs.Revoke(*dir, rest[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s revoked: refused from its next connection; a running server also closes its open one\n", rest[1])
	case rest[0] == "nats-config" && len(rest) == 1:
		text, err := server.NATSAuthConfig(*dir)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = io.WriteString(stdout, text)
			return err
		}
		return os.WriteFile(*out, []byte(text), 0o644)
	default:
		return fmt.Errorf("unknown: certs %v", rest)
	}
	return nil
}

func serveCmd(args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	file := fs.String("config", "", "YAML config file")
	fs.String("state-dir", "", "state directory (JetStream's file store)")
	fs.String("certs", "", "certificate directory (swav-fleet certs init)")
	fs.String("nats-listen", "", "where the embedded NATS server listens for devices")
	fs.String("nats-url", "", "an existing NATS cluster (tls://...) instead of the embedded server")
	fs.String("http", "", "HTTP API address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadServeConfig(*file, fs)
	if err != nil {
		return err
	}
	o := cfg.options()
	o.Log = logging.New(stderr, os.Getenv("JOURNAL_STREAM") != "")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, o)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go hs.Serve(ln)
	go srv.Run(ctx)
	where := "NATS " + o.NATSURL
	if o.NATSURL == "" {
		where = "embedded NATS on " + srv.NATSAddr()
	}
	o.Log.Infof("swav-fleet %s: %s, HTTP on %s, pulling every %v", version, where, ln.Addr(), o.PullInterval)
	daemon.SdNotify(false, daemon.SdNotifyReady)
	go watchdog(ctx)
	<-ctx.Done()
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(shut)
	return nil
}

// watchdog pings systemd at a third of WatchdogSec while the server runs.
func watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}

func clientCmd(cmd string, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	base := fs.String("server", envOr("SWAV_FLEET_SERVER", "http://127.0.0.1:8470"), "the fleet server's HTTP API")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "pull: every online device, now")
	mosaic := fs.String("mosaic", "", "codebook: write a PNG with a row of exemplars per fleet cluster")
	out := fs.StringP("output", "o", "", "get: file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &client{base: *base}
	rest := fs.Args()
	switch {
	case cmd == "devices" && len(rest) == 0:
		var d server.Devices
		if err := c.getJSON("/v1/devices", &d); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, d)
		}
		w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tONLINE\tSTEP\tDIGEST\tPULLED\tPRESET\tERROR")
		for _, v := range d.Devices {
			pulled := "never"
			if v.PulledAt != nil {
				pulled = v.PulledAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(w, "%s\t%v\t%d\t%.12s\t%s\t%s\t%s\n", v.ID, v.Online, v.Step, v.Digest, pulled, v.Preset, v.LastError)
		}
		if d.StoreError != "" {
			fmt.Fprintf(w, "store failing: %s\n", d.StoreError)
		}
		return w.Flush()
	case cmd == "pull" && *all && len(rest) == 0:
		var sum server.RoundSummary
		if err := c.postJSON("/v1/pull", &sum); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, sum)
		}
		fmt.Fprintf(stdout, "%d devices in %.2f s: %d new snapshots (%d bytes, %d stored), %d unchanged, %d failed, %d rejected\n",
			sum.Devices, sum.Seconds, sum.Snapshot, sum.Bytes, sum.Stored, sum.Unchanged, sum.Failed, sum.Rejected)
		if sum.Failed+sum.Rejected > 0 {
			return errors.New("some pulls failed: swav-fleet devices says why")
		}
		return nil
	case cmd == "pull" && len(rest) == 1:
		var r server.PullResult
		err := c.postJSON("/v1/devices/"+rest[0]+"/pull", &r)
		if r.Result != "" {
			if *asJSON {
				printJSON(stdout, r)
			} else {
				fmt.Fprintf(stdout, "%s: %s %.12s step %d, %d bytes in %.0f ms %s\n", r.ID, r.Result, r.Digest, r.Step, r.Bytes, r.TookMS, r.Error)
			}
		}
		return err
	case cmd == "codebook" && len(rest) == 0 && *mosaic != "":
		b, err := c.get("/v1/codebook/mosaic.png")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*mosaic, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mosaic written to %s\n", *mosaic)
		return nil
	case cmd == "codebook" && len(rest) == 0:
		var cb codebook.Codebook
		if err := c.getJSON("/v1/codebook", &cb); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, cb)
		}
		return printCodebook(stdout, &cb)
	case cmd == "label" && len(rest) == 2:
		body, _ := json.Marshal(map[string]string{"name": rest[1]})
		var out map[string]any
		if err := c.sendJSON(http.MethodPut, "/v1/codebook/labels/"+rest[0], body, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "fleet cluster %s: %q\n", rest[0], rest[1])
		return nil
	case cmd == "base" && len(rest) == 0:
		var b server.Base
		if err := c.getJSON("/v1/base", &b); err != nil {
			return err
		}
		return printJSON(stdout, b)
	case cmd == "base" && len(rest) == 2 && rest[0] == "set":
		data, err := os.ReadFile(filepath.Join(rest[1], model.TensorsFile))
		if err != nil {
			return fmt.Errorf("base set: %w (a swavd train --out directory)", err)
		}
		var b server.Base
		if err := c.postJSONBody("/v1/base", data, &b); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "base %s: preset %s, step %d, %d bytes; devices with fleet.base start from it\n", b.Digest, b.Preset, b.Step, b.Bytes)
		return nil
	case cmd == "get" && len(rest) == 1:
		if *out == "" {
			return errors.New("say where with -o FILE")
		}
		var v server.DeviceView
		if err := c.getJSON("/v1/devices/"+rest[0], &v); err != nil {
			return err
		}
		if v.Digest == "" {
			return fmt.Errorf("device %s has no snapshot yet", rest[0])
		}
		b, err := c.get("/v1/snapshots/" + v.Digest)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: device %s step %d, snapshot %s (%d bytes)\n", *out, v.ID, v.Step, v.Digest, len(b))
		return nil
	}
	return fmt.Errorf("usage:\n%s", usage)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// client is a small client of the fleet server's HTTP API.
type client struct{ base string }

func (c *client) do(method, path string) ([]byte, error) { return c.send(method, path, nil) }

func (c *client) send(method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("no fleet server answers at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return b, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return b, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return b, nil
}

func (c *client) get(path string) ([]byte, error) { return c.do(http.MethodGet, path) }

func (c *client) getJSON(path string, v any) error {
	b, err := c.get(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// postJSON decodes the body even on an error status (a failed pull says why).
func (c *client) postJSON(path string, v any) error { return c.postJSONBody(path, nil, v) }

func (c *client) postJSONBody(path string, body []byte, v any) error {
	return c.sendJSON(http.MethodPost, path, body, v)
}

func (c *client) sendJSON(method, path string, body []byte, v any) error {
	b, err := c.send(method, path, body)
	if b != nil {
		json.Unmarshal(b, v)
	}
	return err
}

func printCodebook(w io.Writer, cb *codebook.Codebook) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "codebook %.12s on base %.12s: %d fleet clusters\n", cb.Digest, cb.Base, len(cb.Clusters))
	fmt.Fprintln(tw, "FLEET\tLABEL\tCOUNT\tDEVICES\tMEMBERS (device:cluster cosine)")
	for _, c := range cb.Clusters {
		var ms []string
		for i, m := range c.Members {
			if i == 6 {
				ms = append(ms, fmt.Sprintf("... %d more", len(c.Members)-6))
				break
			}
			ms = append(ms, fmt.Sprintf("%s:%d %.2f", m.Device, m.Cluster, m.Similarity))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\n", c.ID, c.Label, c.Count, c.Devices, strings.Join(ms, ", "))
	}
	fmt.Fprintln(tw, "\nDEVICE\tALIGNED\tSTEP\tUSED\tDRIFT\tREASON")
	for _, d := range cb.Devices {
		drift := "-"
		if d.Aligned {
			drift = fmt.Sprintf("%.3f", d.Drift)
		}
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%s\t%s\n", d.Device, d.Aligned, d.Step, d.Used, drift, d.Reason)
	}
	return tw.Flush()
}
