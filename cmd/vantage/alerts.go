package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vantage-gateway/vantage/internal/alerts"
	"github.com/vantage-gateway/vantage/internal/config"
)

// cmdAlerts runs "vantage alerts export": the config's alert rules as a
// Prometheus rule file and its promtool unit tests.
func cmdAlerts(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprintln(stderr, "usage: vantage alerts export --config FILE [--out DIR]")
		return 2
	}
	fs := flag.NewFlagSet("alerts export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "vantage.yml", "config file whose alerts section is exported")
	out := fs.String("out", ".", "directory to write vantage-rules.yml and vantage-rules-test.yml to")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	const rulesName, testsName = "vantage-rules.yml", "vantage-rules-test.yml"
	rules, tests, err := alerts.Export(cfg, rulesName)
	if err != nil {
		fmt.Fprintf(stderr, "exporting alert rules: %v\n", err)
		return 1
	}
	for name, data := range map[string][]byte{rulesName: rules, testsName: tests} {
		p := filepath.Join(*out, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			fmt.Fprintf(stderr, "writing %s: %v\n", p, err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", p)
	}
	fmt.Fprintf(stdout, "check them with: promtool check rules %s && promtool test rules %s\n",
		filepath.Join(*out, rulesName), filepath.Join(*out, testsName))
	return 0
}
