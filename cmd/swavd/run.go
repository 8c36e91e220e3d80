package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/swavd/swavd/compute/choose"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/daemon"
	"github.com/swavd/swavd/internal/logging"
)

// runDaemon is `swavd run`: the service systemd starts.
func runDaemon(args []string) error {
	c := newConfigFlags("run")
	c.key("daemon.socket", "socket", "", "API socket path, or fd:// for systemd socket activation (daemon.socket)")
	c.key("daemon.state_dir", "state-dir", "", "directory for checkpoints (daemon.state_dir)")
	c.key("daemon.source", "source", "", "frame source: v4l2:/dev/videoN, idx:PATH, dir:PATH or pattern (daemon.source)")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	logger := logging.ForService()
	cfg, be, err := c.open("")
	if err != nil {
		return err
	}
	notify, wd := daemon.SystemdNotifier(logger)
	o := daemonOptions(cfg, c.choice)
	o.Notify, o.Watchdog, o.Log = notify, wd, logger
	d, err := daemon.New(o)
	if err != nil {
		be.Close()
		return err
	}
	defer be.Close()
	defer d.Close()
	ln, err := daemon.Listen(cfg.Daemon.Socket, cfg.Daemon.SocketGroup)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			notify("RELOADING=1")
			if next, err := c.load(""); err != nil {
				logger.Errorf("reload: keeping the running configuration: %v", err)
			} else if err := d.Reload(next); err != nil {
				logger.Warnf("%v", err)
			} else {
				logger.Infof("reload: applied")
			}
			notify("READY=1")
		}
	}()
	if err := d.Run(ctx, ln); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	logger.Infof("stopped")
	return nil
}

// daemonOptions describes the backend (with why auto did not take GL, if
// it did not) and, in auto mode, the CPU fallback; it also applies the
// configured memory limit.
func daemonOptions(cfg *config.Config, c choose.Choice) daemon.Options {
	if mib := cfg.Daemon.MemoryLimitMiB; mib > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(mib) << 20)
	}
	return daemon.Options{Config: cfg, Version: version, Backend: c.Backend, Info: c.Status(), Fallback: c.Fallback()}
}
