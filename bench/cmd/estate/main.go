// Command estate writes a Vantage config for a large estate and the wrk
// script that spreads requests over it, for runs outside the harness (a
// profile, a manual check of memory or reload time):
//
//	go run ./bench/cmd/estate -n 10000 -template bench/configs/estate.yml \
//	  -listen 127.0.0.1:8080 -admin 127.0.0.1:9901 -upstream 127.0.0.1:9000 \
//	  -config vantage.yml -script estate.lua
//	wrk -t1 -c16 -d10s -s estate.lua http://127.0.0.1:8080/
//
// The template's placeholders are those of the harness (bench/README.md).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vantage-gateway/vantage/bench/harness"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "estate:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("estate", flag.ContinueOnError)
	n := fs.Int("n", 10000, "routes (and services) in the estate")
	tmpl := fs.String("template", "bench/configs/estate.yml", "the Vantage config template")
	listen := fs.String("listen", "127.0.0.1:8080", "the listener's host:port")
	admin := fs.String("admin", "127.0.0.1:9901", "the admin listener's host:port")
	upstream := fs.String("upstream", "127.0.0.1:9000", "the upstream's host:port")
	logfile := fs.String("logfile", "access.log", "the access log path, for templates that write one")
	cfgOut := fs.String("config", "vantage.yml", "where to write the config")
	scriptOut := fs.String("script", "estate.lua", "where to write the wrk script")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *n < 1 || *n > 1000000 {
		return fmt.Errorf("-n must be between 1 and 1000000, got %d", *n)
	}
	t, err := os.ReadFile(*tmpl)
	if err != nil {
		return err
	}
	vars := harness.EstateVars(*n, *upstream)
	vars["LISTEN"], vars["ADMIN"], vars["UPSTREAM"], vars["LOGFILE"] = *listen, *admin, *upstream, *logfile
	cfg, err := harness.Render(string(t), vars)
	if err != nil {
		return fmt.Errorf("%s: %w", *tmpl, err)
	}
	if err := os.WriteFile(*cfgOut, []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.WriteFile(*scriptOut, []byte(harness.EstateScript(*n)), 0o644)
}
