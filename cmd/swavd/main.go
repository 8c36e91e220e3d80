// Command swavd learns visual clusters with SwAV. Subcommands:
//
//	swavd run    the daemon (what systemd starts)
//	swavd train  train from scratch or resume from a checkpoint directory
//	swavd eval   kNN accuracy and clustering scores of a checkpoint
//	swavd bench  training and inference throughput
//	swavd version
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

type command struct {
	name, summary string
	run           func(args []string) error
}

var commands = []command{
	{"run", "run the daemon: capture, continual training, clusters on a local socket", runDaemon},
	{"train", "train SwAV from scratch, or resume from --out", runTrain},
	{"eval", "evaluate a checkpoint: kNN top-1, NMI, ARI, non-empty clusters", runEval},
	{"bench", "measure training and inference throughput", runBench},
	{"version", "print the version", func([]string) error { fmt.Println("swavd", version); return nil }},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: swavd COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\n'swavd COMMAND --help' lists a command's flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(os.Args[2:])
			if errors.Is(err, pflag.ErrHelp) {
				os.Exit(0)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "swavd %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	if a := os.Args[1]; a == "-h" || a == "--help" || a == "help" {
		usage()
		return
	}
	fmt.Fprintf(os.Stderr, "swavd: unknown command %q\n", os.Args[1])
	usage()
	os.Exit(2)
}
