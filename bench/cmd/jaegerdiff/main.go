// Command jaegerdiff compares the gateway's Jaeger query APIs with a real
// Jaeger's. It builds (or takes) a Jaeger binary and a vantage binary,
// starts both on loopback ports, sends both the same OTLP/HTTP protobuf
// spans, asks both the same questions (Jaeger's HTTP API and api_v3),
// normalizes only what legitimately differs (package conform) and prints
// the differences. Run from the repository root:
//
//	go run ./bench/cmd/jaegerdiff
//	go run ./bench/cmd/jaegerdiff -update internal/tracestore/queryapi/testdata/jaeger_capture.json
//
// With -update it also saves Jaeger's answers, with the request and the
// time of the run, for the conformance tests of package queryapi. Jaeger
// is built from the nested module bench/jaeger (its go.mod pins the
// version), so the gateway's own module does not depend on it. Every
// process it starts is stopped by its PID; every wait is bounded.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/bench/harness"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi/conform"
)

// jaegerVersion is the version bench/jaeger/go.mod pins.
const jaegerVersion = "v1.75.0"

func main() {
	code, err := run(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jaegerdiff:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

type options struct {
	jaeger, vantage string
	update          string
	raw             string
	timeout         time.Duration
	keep            bool
}

func run(args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("jaegerdiff", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.jaeger, "jaeger", "", "a Jaeger binary (default: build it from bench/jaeger)")
	fs.StringVar(&o.vantage, "vantage", "", "a vantage binary (default: build it from ./cmd/vantage)")
	fs.StringVar(&o.update, "update", "", "write Jaeger's answers, the request and the time to this capture file (for the queryapi tests)")
	fs.StringVar(&o.raw, "raw", "", "write both servers' raw answers to this directory")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long (builds included)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs)")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if fs.NArg() > 0 {
		return 0, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "jaegerdiff-")
	if err != nil {
		return 0, err
	}
	if o.keep {
		fmt.Fprintln(out, "temporary directory:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.jaeger == "" {
		o.jaeger = filepath.Join(tmp, "jaeger")
		fmt.Fprintln(out, "building Jaeger", jaegerVersion, "from bench/jaeger ...")
		if err := goBuild(ctx, "bench/jaeger", o.jaeger, "github.com/jaegertracing/jaeger/cmd/jaeger"); err != nil {
			return 0, err
		}
	}
	if o.vantage == "" {
		o.vantage = filepath.Join(tmp, "vantage")
		fmt.Fprintln(out, "building vantage ...")
		if err := goBuild(ctx, ".", o.vantage, "./cmd/vantage"); err != nil {
			return 0, err
		}
	}

	// The upstream behind the gateway: /fail and /retry answer 503.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" || r.URL.Path == "/retry" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()

	ports, err := freePorts(5)
	if err != nil {
		return 0, err
	}
	jq, jg, jo, public, admin := ports[0], ports[1], ports[2], ports[3], ports[4]
	jcfg := filepath.Join(tmp, "jaeger.yaml")
	if err := os.WriteFile(jcfg, []byte(jaegerConfig(jq, jg, jo)), 0o644); err != nil {
		return 0, err
	}
	vcfg := filepath.Join(tmp, "vantage.yml")
	if err := os.WriteFile(vcfg, []byte(vantageConfig(public, admin, upstream.URL, "http://"+jo)), 0o644); err != nil {
		return 0, err
	}
	jp, err := harness.Start(harness.StartOptions{Name: "jaeger", Argv: []string{o.jaeger, "--config", jcfg}, Env: append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true"), LogPath: filepath.Join(tmp, "jaeger.log"), CPU: -1})
	if err != nil {
		return 0, err
	}
	defer jp.Stop(5 * time.Second)
	vp, err := harness.Start(harness.StartOptions{Name: "vantage", Argv: []string{o.vantage, "run", "--config", vcfg}, LogPath: filepath.Join(tmp, "vantage.log"), CPU: -1})
	if err != nil {
		return 0, err
	}
	defer vp.Stop(5 * time.Second)
	servers := []*server{
		{name: "jaeger", proc: jp, query: "http://" + jq, otlp: "http://" + jo + "/v1/traces"},
		{name: "vantage", proc: vp, query: "http://" + admin + "/jaeger", otlp: "http://" + admin + "/v1/traces"},
	}
	for _, s := range servers {
		if err := harness.WaitReady(ctx, s.proc, s.query+"/api/services", -1, 60*time.Second); err != nil {
			return 0, err
		}
	}

	now := time.Now().UTC()
	base := now.Add(-10 * time.Minute).Truncate(time.Second)
	req := fixture(base)
	body, err := proto.Marshal(req)
	if err != nil {
		return 0, err
	}
	for _, s := range servers {
		if err := s.export(ctx, body); err != nil {
			return 0, err
		}
	}
	for _, s := range servers {
		if err := s.waitStored(ctx, map[string]int{traceA: 9, traceB: 2, traceC: 1}, 20*time.Second); err != nil {
			return 0, err
		}
	}

	// The gateway's own spans: it stores them itself (not through OTLP)
	// and exports them over OTLP/HTTP to Jaeger.
	var gwTraces []string
	for _, path := range []string{"/ok?q=1", "/fail", "/retry"} {
		id, err := proxied(ctx, "http://"+public+path)
		if err != nil {
			return 0, err
		}
		gwTraces = append(gwTraces, id)
	}
	for _, id := range gwTraces {
		if err := waitSame(ctx, servers, id, 20*time.Second); err != nil {
			return 0, err
		}
	}

	reqs := requests(base)
	for i, id := range gwTraces {
		reqs = append(reqs,
			request{name: fmt.Sprintf("gateway's own trace %d", i+1), path: "/api/traces/" + id, live: true},
			request{name: fmt.Sprintf("v3 gateway's own trace %d", i+1), path: "/api/v3/traces/" + id, live: true})
	}
	capture := conform.Capture{Server: "jaeger " + jaegerVersion, Now: time.Now().UTC()}
	if capture.Request, err = (protojson.MarshalOptions{Indent: "  "}).Marshal(req); err != nil {
		return 0, err
	}
	differing, deliberate := 0, 0
	for _, r := range reqs {
		js, jb, err := servers[0].get(ctx, r.path)
		if err != nil {
			return 0, err
		}
		vs, vb, err := servers[1].get(ctx, r.path)
		if err != nil {
			return 0, err
		}
		if o.raw != "" {
			if err := saveRaw(o.raw, r, jb, vb); err != nil {
				return 0, err
			}
		}
		if !r.live {
			capture.Cases = append(capture.Cases, conform.Case{Name: r.name, Path: r.path, Status: js, Body: indent(jb), Deliberate: r.deliberate})
		}
		var diffs []string
		if js != vs {
			diffs = append(diffs, fmt.Sprintf("status: Jaeger %d, ours %d", js, vs))
		}
		d, notes, err := conform.Compare(r.path, jb, vb, 40)
		if err != nil {
			diffs = append(diffs, err.Error()+": "+string(jb))
		}
		diffs = append(diffs, d...)
		for _, n := range notes {
			fmt.Fprintf(out, "note      %s: %s\n", r.name, n)
		}
		if len(diffs) == 0 {
			fmt.Fprintf(out, "same      %s  (%s)\n", r.name, r.path)
			if r.deliberate != "" {
				fmt.Fprintf(out, "    (alike although a difference is expected: %s)\n", r.deliberate)
			}
			continue
		}
		if r.deliberate != "" {
			deliberate++
			fmt.Fprintf(out, "on purpose %s  (%s)\n    %s\n", r.name, r.path, r.deliberate)
			for _, d := range diffs {
				fmt.Fprintf(out, "    %s\n", d)
			}
			continue
		}
		differing++
		fmt.Fprintf(out, "DIFFERENT %s  (%s)\n", r.name, r.path)
		for _, d := range diffs {
			fmt.Fprintf(out, "    %s\n", d)
		}
	}
	fmt.Fprintf(out, "\n%d of %d requests answered alike, %d differently on purpose, %d differently\n",
		len(reqs)-differing-deliberate, len(reqs), deliberate, differing)
	if o.update != "" {
		b, err := json.MarshalIndent(capture, "", "  ")
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(o.update, append(b, '\n'), 0o644); err != nil {
			return 0, err
		}
		fmt.Fprintln(out, "wrote", o.update)
	}
	if differing > 0 {
		return 1, nil
	}
	return 0, nil
}

// goBuild builds pkg into out, from the module in dir.
func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w", pkg, dir, err)
	}
	return nil
}

// freePorts returns n loopback addresses that were free a moment ago.
func freePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// jaegerConfig is Jaeger v2 all-in-one with the memory store, an OTLP/HTTP
// receiver and the query API, all on the given loopback addresses, with
// no batching (spans are stored as they arrive) and no metrics listener.
func jaegerConfig(queryHTTP, queryGRPC, otlpHTTP string) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %q
    grpc:
      endpoint: %q
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %q
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, queryHTTP, queryGRPC, otlpHTTP)
}

// vantageConfig is a gateway with the trace store on (the default) and
// its admin listener, where the OTLP receiver and the query APIs are, in
// front of upstream (with a route that retries a 503 once), exporting its
// own spans over OTLP/HTTP to otlp too.
func vantageConfig(public, admin, upstream, otlp string) string {
	return fmt.Sprintf(`listeners: [{name: public, address: %q}]
admin: {address: %q}
shutdown_grace: 1s
services: [{name: app, upstreams: [{url: %q}]}]
routes:
  - {name: retried, match: {path_prefix: /retry}, service: app, retry: {attempts: 2, on: ["503"], backoff: 1ms}}
  - {name: all, match: {path_prefix: /}, service: app}
tracing:
  response_header: traceresponse
  exporters: [{name: jaeger, type: otlp_http, endpoint: %q, flush_interval: 100ms}]
`, public, admin, upstream, otlp)
}

// proxied sends a request through the gateway and returns its trace id
// (from the traceresponse header).
func proxied(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("through the gateway: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	parts := strings.Split(resp.Header.Get("Traceresponse"), "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return "", fmt.Errorf("through the gateway: traceresponse %q", resp.Header.Get("Traceresponse"))
	}
	return parts[1], nil
}

// spanCount returns the number of spans of trace id as the server's
// /api/traces/{id} returns it (0 when it does not), with the answer's
// status and body.
func (s *server) spanCount(ctx context.Context, id string) (n, code int, body []byte, err error) {
	code, body, err = s.get(ctx, "/api/traces/"+id)
	if err != nil {
		return 0, code, body, err
	}
	var r struct {
		Data []struct {
			Spans []json.RawMessage `json:"spans"`
		} `json:"data"`
	}
	if code == http.StatusOK && json.Unmarshal(body, &r) == nil && len(r.Data) == 1 {
		n = len(r.Data[0].Spans)
	}
	return n, code, body, nil
}

// waitSame waits until every server returns the trace with the same
// number of spans, at least one.
func waitSame(ctx context.Context, servers []*server, id string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		counts := make([]int, len(servers))
		for i, s := range servers {
			n, _, _, err := s.spanCount(ctx, id)
			if err != nil {
				return err
			}
			counts[i] = n
		}
		same := counts[0] > 0
		for _, c := range counts {
			same = same && c == counts[0]
		}
		if same {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway's trace %s: spans per server %v after %v", id, counts, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type server struct {
	name  string
	proc  *harness.Proc
	query string // the query API's root
	otlp  string // the OTLP/HTTP traces endpoint
}

var client = &http.Client{Timeout: 10 * time.Second}

func (s *server) export(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.otlp, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: export: %w", s.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: export: status %d: %q", s.name, resp.StatusCode, b)
	}
	return nil
}

func (s *server) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.query+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: GET %s: %w", s.name, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: GET %s: %w", s.name, path, err)
	}
	return resp.StatusCode, b, nil
}

// waitStored waits until the server returns each trace with its number of
// spans.
func (s *server) waitStored(ctx context.Context, want map[string]int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		missing := ""
		for id, n := range want {
			got, code, b, err := s.spanCount(ctx, id)
			if err != nil {
				return err
			}
			if got != n {
				missing = fmt.Sprintf("trace %s (status %d, %.300s)", id, code, b)
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not stored after %v; log:\n%s", s.name, missing, limit, s.proc.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func indent(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(b), "", "  "); err != nil {
		s, _ := json.Marshal(string(b)) // not JSON: kept as a string
		return s
	}
	return buf.Bytes()
}

func saveRaw(dir string, r request, jaeger, ours []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			return c
		}
		return '-'
	}, strings.ToLower(r.name))
	return errors.Join(
		os.WriteFile(filepath.Join(dir, name+".jaeger.json"), indent(jaeger), 0o644),
		os.WriteFile(filepath.Join(dir, name+".vantage.json"), indent(ours), 0o644),
	)
}
