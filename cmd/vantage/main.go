// Command vantage is an observability-first API gateway.
//
//	vantage run --config FILE        serve with a config file (hot reload on change and SIGHUP)
//	vantage validate --config FILE   check a config file: print every error, exit 1 if any
//	vantage proxy --listen ADDR --to URL [--to URL ...] [--admin ADDR [--admin-token-file FILE]]
//	                                 a reverse proxy in one line, no file needed
//	vantage demo                     a demo shop behind the gateway, with gentle traffic
//	vantage alerts export --config FILE [--out DIR]
//	                                 the alert rules as a Prometheus rule file and its promtool tests
//	vantage rollout VERB [NAME]      show or steer progressive rollouts
//	vantage version                  print the version
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "proxy":
		return cmdProxy(rest, stdout, stderr)
	case "rollout":
		return cmdRollout(rest, stdout, stderr)
	case "demo":
		return cmdDemo(rest, stdout, stderr)
	case "trace":
		return cmdTrace(rest, stdout, stderr)
	case "alerts":
		return cmdAlerts(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "vantage", versionString())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "vantage: unknown command %q\n\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Vantage, an observability-first API gateway.

Usage:
  vantage run --config FILE        serve with a config file (hot reload on change and SIGHUP)
  vantage validate --config FILE   check a config file: print every error, exit 1 if any
  vantage proxy --listen ADDR --to URL [--to URL ...] [--admin ADDR [--admin-token-file FILE]]
                                   a reverse proxy in one line, no file needed
  vantage demo [--listen ADDR] [--admin ADDR] [--traffic RATE] [--duration D] [--config-out FILE]
                                   a demo shop behind the gateway, with gentle traffic
  vantage trace [--admin URL] TRACE_ID
                                   print a stored trace as a waterfall, with its log lines
  vantage alerts export --config FILE [--out DIR]
                                   the alert rules as a Prometheus rule file and its promtool tests
  vantage rollout list|status|pause|resume|promote|abort|restart [NAME] [--admin URL]
                                   show or steer progressive rollouts
  vantage version                  print the version

Run "vantage COMMAND -h" for a command's flags.
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
