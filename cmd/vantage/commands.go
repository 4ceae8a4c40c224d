package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/vantage-gateway/vantage/internal/config"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "vantage.yml", "config file to check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d services, %d routes)\n", *file, len(cfg.Listeners), len(cfg.Services), len(cfg.Routes))
	return 0
}

func printConfigErrors(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "config has %d error(s):\n", len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "config: %v\n", err)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "vantage.yml", "config file")
	watch := fs.Bool("watch", true, "reload when the config file changes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	return serve(cfg, serveOptions{file: *file, watch: *watch, stdout: stdout, stderr: stderr})
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdProxy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	admin := fs.String("admin", "off", "admin listener address (off to disable)")
	adminTokenFile := fs.String("admin-token-file", "", "file holding the admin API's bearer token (required when --admin is not a loopback address)")
	var to stringList
	fs.Var(&to, "to", "upstream URL (repeat for several)")
	tracing := fs.Bool("tracing", true, "trace requests (and return the trace id in a traceresponse header)")
	metrics := fs.Bool("metrics", true, "serve Prometheus metrics on the admin listener")
	accessLog := fs.Bool("access-log", true, "write an access log to stdout")
	otlpGRPC := fs.String("otlp-grpc", "", "serve an OTLP/gRPC receiver for services' spans and logs on this address (e.g. 127.0.0.1:4317)")
	traceStore := fs.Bool("trace-store", true, "keep recent traces in memory, queryable on the admin listener (vantage trace, /jaeger)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(to) == 0 {
		fmt.Fprintln(stderr, "vantage proxy: at least one --to URL is required")
		return 2
	}
	cfg := &config.Config{
		Listeners: []config.Listener{{Name: "proxy", Address: *listen}},
		Admin:     config.Admin{Address: *admin},
		Services:  []config.Service{{Name: "upstream"}},
		Routes: []config.Route{{
			Name:    "all",
			Match:   config.Match{PathPrefix: "/"},
			Service: "upstream",
		}},
	}
	if *adminTokenFile != "" {
		cfg.Admin.Auth = &config.AdminAuth{Tokens: []config.AdminToken{{Name: "admin-token-file", TokenFile: *adminTokenFile}}}
	}
	for _, u := range to {
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		if pu, err := url.Parse(u); err == nil && (pu.Path == "/" || pu.Path == "") {
			pu.Path = ""
			u = pu.String()
		}
		cfg.Services[0].Upstreams = append(cfg.Services[0].Upstreams, config.Upstream{URL: u})
	}
	cfg.Tracing.Enabled = tracing
	cfg.Metrics.Enabled = metrics
	cfg.AccessLog.Enabled = accessLog
	cfg.OTLPReceiver.GRPCAddress = *otlpGRPC
	cfg.TraceStore.Enabled = traceStore
	applyProxyDefaults(cfg)
	cfg.ApplyEnv(os.LookupEnv)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		printConfigErrors(stderr, err)
		return 2
	}
	fmt.Fprintf(stdout, "proxy    http://%s → %s\n", *listen, strings.Join(to, ", "))
	if *traceStore && *tracing {
		if *admin == "off" {
			fmt.Fprintln(stdout, "traces   kept in memory; add --admin 127.0.0.1:9901 to look them up (vantage trace ID)")
		} else {
			fmt.Fprintf(stdout, "traces   vantage trace --admin http://%s TRACE_ID   (Jaeger API: http://%s/jaeger)\n", *admin, *admin)
		}
	}
	return serve(cfg, serveOptions{stdout: stdout, stderr: stderr, ready: func(b boundAddrs) {
		if b.OTLPGRPC != "" {
			fmt.Fprintf(stdout, "otlp     OTLP/gRPC receiver on %s\n", b.OTLPGRPC)
		}
	}})
}
