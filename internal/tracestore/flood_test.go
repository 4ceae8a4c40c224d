package tracestore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/otlpreceiver"
)

// floodChildEnv makes the test binary a flood target: a store behind an
// OTLP/HTTP receiver on a loopback port (see runFloodChild).
const floodChildEnv = "TRACESTORE_FLOOD_CHILD_BUDGET"

func TestMain(m *testing.M) {
	if v := os.Getenv(floodChildEnv); v != "" {
		os.Exit(runFloodChild(v))
	}
	os.Exit(m.Run())
}

// floodStats is what the flood target reports at /stats.
type floodStats struct {
	Bytes, Budget, Traces, Spans int64
	HeapInuse, HeapAlloc, Sys    uint64
	NumGC                        uint32
}

// runFloodChild serves a store of the given budget behind an OTLP/HTTP
// receiver on 127.0.0.1, prints its address, and exits when its stdin
// closes (or after two minutes, whichever is first).
func runFloodChild(budget string) int {
	n, err := strconv.ParseInt(budget, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := New(Options{Budget: n})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	c := s.OTLPConsumer()
	r, err := otlpreceiver.New(otlpreceiver.Options{Traces: c, Logs: c})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", r)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		st := s.Stats()
		_ = json.NewEncoder(w).Encode(floodStats{Bytes: st.Bytes, Budget: st.Budget, Traces: st.Traces, Spans: st.Spans,
			HeapInuse: m.HeapInuse, HeapAlloc: m.HeapAlloc, Sys: m.Sys, NumGC: m.NumGC})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
	_ = srv.Close()
	return 0
}

// floodRequest is an OTLP export of 50 traces of 10 spans (gateway-like
// attributes), trace ids from first on.
func floodRequest(first uint64) []byte {
	var spans []*tracepb.Span
	now := uint64(time.Now().UnixNano())
	for n := first; n < first+50; n++ {
		for k := uint64(1); k <= 10; k++ {
			sp := pspan(n, n*100+k, 0, fmt.Sprintf("op-%d", k))
			sp.StartTimeUnixNano, sp.EndTimeUnixNano = now, now+uint64(k)*1e6
			if k > 1 {
				p := sid(n*100 + k - 1)
				sp.ParentSpanId = p[:]
			}
			for _, kv := range gatewayAttrs(n)[:8] {
				v := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: kv.AsString()}}
				if kv.Type == TypeInt64 {
					v = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: kv.Int}}
				}
				sp.Attributes = append(sp.Attributes, &commonpb.KeyValue{Key: kv.Key, Value: v})
			}
			spans = append(spans, sp)
		}
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: res("shop", str("host.name", "h1")), ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}},
	}}
	b, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	return b
}

// readRSS returns VmRSS and VmHWM of a process, in bytes.
func readRSS(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	return rss, hwm
}

// BenchmarkFloodRSS floods a store of a 32 MiB budget, in a process of its
// own behind the OTLP/HTTP receiver, with four times its budget of spans
// (bounded: 2 000 requests of 500 spans at most, 90 s at most), and
// reports the process's resident memory against the budget: at its peak
// (VmHWM), at the end, and before the flood (the empty process). With
// GOMEMLIMIT set (the second case) the collector works harder near the
// limit instead of letting the heap double.
//
//	go test ./internal/tracestore -run XXX -bench FloodRSS -benchtime 1x
func BenchmarkFloodRSS(b *testing.B) {
	const budget = 32 << 20
	for _, c := range []struct{ name, memlimit string }{{"gogc=100", ""}, {"gomemlimit=64MiB", "64MiB"}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				floodOnce(b, budget, c.memlimit)
			}
		})
	}
}

func floodOnce(b *testing.B, budget int64, memlimit string) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^$")
	cmd.Env = append(os.Environ(), floodChildEnv+"="+strconv.FormatInt(budget, 10))
	if memlimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+memlimit)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill() // by its own pid
			<-done
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		b.Fatalf("the flood target did not start: %q %v", line, err)
	}
	base := "http://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	client := &http.Client{Timeout: 10 * time.Second}
	stats := func() floodStats {
		resp, err := client.Get(base + "/stats")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var st floodStats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			b.Fatal(err)
		}
		return st
	}
	pid := cmd.Process.Pid
	rss0, _ := readRSS(pid)

	// Flood: unique traces until four budgets of encoded spans went in.
	deadline := time.Now().Add(90 * time.Second)
	var sent, refused, bodyBytes int64
	var maxRSS int64
	var maxStore int64
	target := 4 * budget
	for req := 0; req < 2000 && time.Now().Before(deadline); req++ {
		body := floodRequest(uint64(req)*50 + 1)
		resp, err := client.Post(base+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			sent += 500
			bodyBytes += int64(len(body))
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			refused += 500
			time.Sleep(5 * time.Millisecond)
		default:
			b.Fatalf("the receiver answered %d", resp.StatusCode)
		}
		if req%20 == 0 {
			if r, _ := readRSS(pid); r > maxRSS {
				maxRSS = r
			}
			st := stats()
			maxStore = max(maxStore, st.Bytes)
			if st.Bytes > st.Budget {
				b.Fatalf("the store counts %d bytes, over its budget %d", st.Bytes, st.Budget)
			}
			if sent > 0 && st.Spans > 0 && bodyBytes > target {
				break
			}
		}
	}
	st := stats()
	rss, hwm := readRSS(pid)
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(float64(hwm)/float64(budget), "peakRSS/budget")
	b.ReportMetric(float64(rss)/float64(budget), "endRSS/budget")
	b.ReportMetric(float64(hwm-rss0)/float64(budget), "peakRSS-empty/budget")
	b.ReportMetric(float64(st.HeapInuse)/float64(budget), "heapInuse/budget")
	b.ReportMetric(float64(maxStore)/float64(budget), "counted/budget")
	fills := 0.0
	if st.Spans > 0 {
		fills = float64(sent) * float64(st.Bytes) / float64(st.Spans) / float64(budget)
	}
	if fills < 2 {
		// A loaded machine sends less within the time bound.
		b.Skipf("the flood filled the store only %.1f times within its time bound; an RSS figure needs several", fills)
	}
	b.ReportMetric(fills, "fills")
	b.ReportMetric(float64(sent), "spans-sent")
	b.ReportMetric(float64(refused), "spans-refused")
	b.Logf("budget %.0f MiB, filled %.1f times: RSS empty %.1f MiB, peak %.1f MiB, end %.1f MiB; heap in use %.1f MiB; the store counts %.1f MiB (%d traces, %d spans); %.1f MiB of OTLP sent, %d spans sent, %d refused, %d GCs",
		mib(budget), fills, mib(rss0), mib(hwm), mib(rss), mib(int64(st.HeapInuse)), mib(st.Bytes), st.Traces, st.Spans, mib(bodyBytes), sent, refused, st.NumGC)
}
