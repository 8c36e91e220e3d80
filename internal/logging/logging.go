// Package logging gives swavd and swav-fleet leveled logs on log/slog.
// Under systemd each line starts with its syslog priority ("<4>" for a
// warning: sd-daemon(3)), which journald strips and records, so that
// `journalctl -p warning -u swavd` shows warnings and errors only.
// Elsewhere a line starts with the time and the level.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Logger logs printf-style messages at a level; the zero Logger discards.
type Logger struct{ L *slog.Logger }

func (l Logger) logf(level slog.Level, format string, args []any) {
	if l.L != nil {
		l.L.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

// Infof logs what an operator may want to know: starts, stops, progress.
func (l Logger) Infof(format string, args ...any) { l.logf(slog.LevelInfo, format, args) }

// Warnf logs what went wrong but was handled: a frame skipped, a retry.
func (l Logger) Warnf(format string, args ...any) { l.logf(slog.LevelWarn, format, args) }

// Errorf logs what failed and needs someone: a checkpoint not written,
// training stopped.
func (l Logger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args) }

// ForService is the logger of a service writing to stderr: with syslog
// priorities when journald reads it (JOURNAL_STREAM set), else with times.
func ForService() Logger {
	return New(os.Stderr, os.Getenv("JOURNAL_STREAM") != "")
}

// New writes one line per record to w.
func New(w io.Writer, journald bool) Logger {
	return Logger{slog.New(&handler{w: w, journald: journald, mu: &sync.Mutex{}})}
}

// Printf hands every record, as "LEVEL message", to printf (a test's
// t.Logf, or a function that keeps the lines).
func Printf(printf func(format string, args ...any)) Logger {
	return Logger{slog.New(&handler{printf: printf, mu: &sync.Mutex{}})}
}

// handler formats records as single lines.
type handler struct {
	w        io.Writer
	printf   func(string, ...any)
	journald bool
	attrs    []slog.Attr
	mu       *sync.Mutex
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *handler) WithGroup(string) slog.Handler { return h }

// priority is the syslog priority of a level (sd-daemon(3) prefixes).
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case h.printf != nil:
		fmt.Fprintf(&b, "%s ", r.Level)
	case h.journald:
		fmt.Fprintf(&b, "<%d>", priority(r.Level))
	default:
		fmt.Fprintf(&b, "%s %s ", r.Time.Format(time.DateTime), r.Level)
	}
	msg := r.Message
	if h.journald { // every line of a multi-line message keeps the priority
		msg = strings.ReplaceAll(msg, "\n", fmt.Sprintf("\n<%d>", priority(r.Level)))
	}
	b.WriteString(msg)
	attr := func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true }
	for _, a := range h.attrs {
		attr(a)
	}
	r.Attrs(attr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.printf != nil {
		h.printf("%s", b.String())
		return nil
	}
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}
