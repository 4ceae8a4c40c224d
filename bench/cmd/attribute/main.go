// Command attribute splits CPU profiles of the gateway among Vantage's
// packages (see package bench/attribute): each sample goes to the
// innermost Vantage frame of its stack, so a middleware is charged for its
// own work and not for the handlers it calls.
//
//	bench/profile.sh tracing1 60 tracing1.pprof
//	go run ./bench/cmd/attribute -requests 850000 tracing1.pprof
//
// Several profiles (of the same variant) are pooled. -requests, the number
// of requests served while profiling, adds a µs/request column.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/pprof/profile"

	"github.com/vantage-gateway/vantage/bench/attribute"
)

func main() {
	module := flag.String("module", "github.com/vantage-gateway/vantage", "import path prefix of the project's packages")
	depth := flag.Int("depth", 2, "path elements below the module that name a group (2: internal/tracing)")
	requests := flag.Int64("requests", 0, "requests served while the profiles were taken (adds µs/request)")
	minShare := flag.Float64("min", 0.002, "groups under this share of the CPU are summed in one row")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: attribute [flags] profile.pprof...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var profs []*profile.Profile
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fatal(err)
		}
		p, err := profile.Parse(f)
		f.Close()
		if err != nil {
			fatal(fmt.Errorf("%s: %w", name, err))
		}
		profs = append(profs, p)
	}
	rep, err := attribute.Split(attribute.Options{Module: *module, Depth: *depth}, profs...)
	if err != nil {
		fatal(err)
	}
	if err := rep.Write(os.Stdout, *requests, *minShare); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "attribute:", err)
	os.Exit(1)
}
