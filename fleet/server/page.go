package server

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/codebook"
)

// thumbsPerCluster bounds the exemplars shown per fleet cluster.
const thumbsPerCluster = 8

// thumbnail is a device cluster's exemplar, from the device's newest
// snapshot (devices with fleet.share_exemplars only); nil if there is none.
func (s *Server) thumbnail(cb *codebook.Codebook, device string, cluster int) image.Image {
	var snap *fleet.Snapshot
	for _, d := range cb.Devices {
		if d.Device == device {
			s.cbMu.Lock()
			snap = s.snapCache[d.Snapshot]
			s.cbMu.Unlock()
		}
	}
	if snap == nil || snap.Exemplars == nil || cluster >= snap.Meta.K || snap.Counts[cluster] == 0 {
		return nil
	}
	const n = fleet.ExemplarSize
	ch := snap.ExemplarChannels
	pix := snap.Exemplars[cluster*n*n*ch : (cluster+1)*n*n*ch]
	if ch == 1 {
		return &image.Gray{Pix: append([]byte(nil), pix...), Stride: n, Rect: image.Rect(0, 0, n, n)}
	}
	im := image.NewRGBA(image.Rect(0, 0, n, n))
	for i := 0; i < n*n; i++ {
		im.Pix[4*i], im.Pix[4*i+1], im.Pix[4*i+2], im.Pix[4*i+3] = pix[3*i], pix[3*i+1], pix[3*i+2], 255
	}
	return im
}

type thumb struct {
	Device  string
	Cluster int
	img     image.Image
}

// thumbs are a fleet cluster's exemplars, most assigned members first.
func (s *Server) thumbs(cb *codebook.Codebook, c codebook.Cluster) []thumb {
	var out []thumb
	for _, m := range c.Members {
		if len(out) == thumbsPerCluster {
			break
		}
		if im := s.thumbnail(cb, m.Device, m.Cluster); im != nil {
			out = append(out, thumb{m.Device, m.Cluster, im})
		}
	}
	return out
}

// Mosaic draws a row per fleet cluster: its id and label, then exemplars
// of its members, each captioned with its device and device cluster.
func (s *Server) Mosaic(cb *codebook.Codebook) (image.Image, error) {
	const tile, gap, label, caption = 64, 6, 150, 14
	rowH := tile + caption + gap
	var rows [][]thumb
	for _, c := range cb.Clusters {
		rows = append(rows, s.thumbs(cb, c))
	}
	found := false
	for _, r := range rows {
		found = found || len(r) > 0
	}
	if !found {
		return nil, fmt.Errorf("no exemplars: no device on the base shares them (fleet.share_exemplars)")
	}
	cols := thumbsPerCluster
	m := image.NewRGBA(image.Rect(0, 0, label+cols*(tile+gap), len(rows)*rowH+gap))
	draw.Draw(m, m.Bounds(), image.White, image.Point{}, draw.Src)
	text := func(x, y int, str string) {
		d := font.Drawer{Dst: m, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(str)
	}
	for r, c := range cb.Clusters {
		y0 := gap + r*rowH
		text(4, y0+16, fmt.Sprintf("fleet %d", c.ID))
		text(4, y0+32, truncate(c.Label, 20))
		text(4, y0+48, fmt.Sprintf("%d, %d devices", c.Count, c.Devices))
		for i, t := range rows[r] {
			x0 := label + i*(tile+gap)
			b := t.img.Bounds()
			for y := 0; y < tile; y++ {
				for x := 0; x < tile; x++ {
					m.Set(x0+x, y0+y, t.img.At(b.Min.X+x*b.Dx()/tile, b.Min.Y+y*b.Dy()/tile))
				}
			}
			text(x0, y0+tile+caption-2, truncate(fmt.Sprintf("%s:%d", t.Device, t.Cluster), tile/7))
		}
	}
	return m, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:max(n-1, 0)] + "~"
}

func (s *Server) handleMosaic(w http.ResponseWriter, r *http.Request) error {
	cb, err := s.Codebook(r.Context())
	if err != nil {
		return err
	}
	m, err := s.Mosaic(cb)
	if err != nil {
		return errorf(http.StatusNotFound, "mosaic: %v", err)
	}
	w.Header().Set("Content-Type", "image/png")
	return png.Encode(w, m)
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"when": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.Local().Format(time.DateTime)
	},
	"pct": func(v float64) string { return fmt.Sprintf("%.3f", v) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>swav-fleet</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.off{color:#999}.err{color:#b00}
img{width:48px;height:48px;image-rendering:pixelated;margin-right:2px}
code{font-size:90%}
</style></head><body>
<h1>swav-fleet</h1>
<p>{{.Online}} of {{len .Devices}} devices online. Base: {{if .Base}}<code>{{short .Base.Digest}}</code> ({{.Base.Preset}}, step {{.Base.Step}}){{else}}none set{{end}}.
Codebook: <code>{{short .Codebook.Digest}}</code>, {{len .Codebook.Clusters}} fleet clusters.
{{if .StoreError}}<span class="err">Storing snapshots fails: {{.StoreError}}</span>{{end}}</p>
<h2>Devices</h2>
<table id="devices"><tr><th>device</th><th>online</th><th>step</th><th>base</th><th>last pull</th><th>drift</th><th>error</th></tr>
{{range .Devices}}<tr class="device{{if not .Online}} off{{end}}"><td>{{.ID}}</td><td>{{if .Online}}yes{{else}}no{{end}}</td><td>{{.Step}}</td>
<td>{{if .OnBase}}fleet base{{else if .Base}}other <code>{{short .Base}}</code>{{else}}none{{end}}</td>
<td>{{when .PulledAt}}</td><td>{{if .Aligned}}{{pct .Drift}}{{else}}<span title="{{.Reason}}">-</span>{{end}}</td>
<td class="err">{{.LastError}}{{if .BaseError}} {{.BaseError}}{{end}}</td></tr>
{{end}}</table>
<h2>Fleet clusters</h2>
{{if not .Clusters}}<p>No fleet clusters yet: a base (swav-fleet base set) and snapshots of devices on it are needed.</p>{{end}}
<table id="clusters">{{if .Clusters}}<tr><th>fleet</th><th>label</th><th>assignments</th><th>devices</th><th>members</th><th>exemplars</th></tr>{{end}}
{{range .Clusters}}<tr><td>{{.ID}}</td><td>{{.Label}}</td><td>{{.Count}}</td><td>{{.Devices}}</td>
<td>{{range $i, $m := .Members}}{{if lt $i 8}}{{$m.Device}}:{{$m.Cluster}} ({{pct $m.Similarity}})<br>{{end}}{{end}}{{if gt (len .Members) 8}}... {{len .Members}} in all{{end}}</td>
<td>{{range .Thumbs}}<img alt="{{.Alt}}" title="{{.Alt}}" src="{{.Src}}">{{end}}</td></tr>
{{end}}</table>
{{if .Unaligned}}<h2>Left out of the codebook</h2><table><tr><th>device</th><th>why</th></tr>
{{range .Unaligned}}<tr><td>{{.Device}}</td><td>{{.Reason}}</td></tr>{{end}}</table>{{end}}
<p class="off">Drift: the mean cosine between a device's used clusters (their centroids) and their fleet clusters; 1 is on the codebook. Rebase (swavctl fleet rebase) a device whose drift keeps falling while its scene has not changed.</p>
</body></html>
`))

type pageDevice struct {
	DeviceView
	OnBase, Aligned bool
	Drift           float64
	Reason          string
}

type pageThumb struct{ Alt, Src template.URL }

type pageCluster struct {
	codebook.Cluster
	Thumbs []pageThumb
}

// handlePage is the fleet page: devices and the codebook, server-rendered.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) error {
	cb, err := s.Codebook(r.Context())
	if err != nil {
		return err
	}
	base, _, err := s.store.Base(r.Context(), false)
	if err != nil {
		return err
	}
	align := map[string]codebook.Device{}
	for _, d := range cb.Devices {
		align[d.Device] = d
	}
	now := time.Now()
	data := struct {
		Online     int
		Base       *Base
		Codebook   *codebook.Codebook
		Devices    []pageDevice
		Clusters   []pageCluster
		Unaligned  []codebook.Device
		StoreError string
	}{Base: base, Codebook: cb}
	for _, d := range s.store.Devices() {
		a := align[d.ID]
		v := pageDevice{DeviceView: view(d, now, false), Aligned: a.Aligned, Drift: a.Drift, Reason: a.Reason}
		v.OnBase = base != nil && d.Base == base.Digest
		if v.Online {
			data.Online++
		}
		data.Devices = append(data.Devices, v)
		if !a.Aligned {
			data.Unaligned = append(data.Unaligned, a)
		}
	}
	for _, c := range cb.Clusters {
		pc := pageCluster{Cluster: c}
		for _, t := range s.thumbs(cb, c) {
			var b bytes.Buffer
			png.Encode(&b, t.img)
			pc.Thumbs = append(pc.Thumbs, pageThumb{Alt: template.URL(fmt.Sprintf("%s:%d", t.Device, t.Cluster)),
				Src: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))})
		}
		data.Clusters = append(data.Clusters, pc)
	}
	s.mu.Lock()
	data.StoreError = s.storeErr
	s.mu.Unlock()
	var out bytes.Buffer
	if err := page.Execute(&out, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(out.Bytes())
	return nil
}
