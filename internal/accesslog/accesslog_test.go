package accesslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// logOne runs one finished request through the middleware of l.
func logOne(l *Logger, route string, rec *observe.Record) {
	mw := ended(l, l.ForRoute(routeOf(route)))
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := sampleRequest().WithContext(observe.NewContext(sampleRequest().Context(), rec))
	h.ServeHTTP(httptest.NewRecorder(), r)
}

func TestEndToEndThroughUpstream(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Set-Cookie", "sid=secret")
		fmt.Fprint(w, "hello from upstream")
	}))
	defer upstream.Close()
	client := upstream.Client()
	defer client.CloseIdleConnections()

	clk := clock.NewFake(t0)
	out := &syncBuffer{}
	l := newTestLogger(t, testConfig(func(a *config.AccessLog) {
		a.RequestHeaders = []string{"X-Request-Id"}
		a.ResponseHeaders = []string{"Content-Type"}
	}), out, func(o *Options) { o.Clock = clk })

	chain := middleware.Chain(proxyStandIn(clk, upstream.URL, client), ended(l, l.ForRoute(routeOf("users"))))
	gw := httptest.NewServer(standIn(clk, chain))
	defer gw.Close()

	req, _ := http.NewRequest("GET", gw.URL+"/users/7?x=1", nil)
	req.Header.Set("X-Request-Id", "abc")
	req.Header.Set("Cookie", "session=secret")
	gc := gw.Client()
	defer gc.CloseIdleConnections()
	resp, err := gc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 line, got %d:\n%s", len(lines), out.String())
	}
	if strings.Contains(lines[0], "secret") {
		t.Fatalf("secret leaked: %s", lines[0])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"trace_id":                          "01020300000000000000000000000000",
		"http.request.method":               "GET",
		"url.path":                          "/users/7",
		"url.query":                         "x=1",
		"client.address":                    "127.0.0.1",
		"http.response.status_code":         200.0,
		"route":                             "users",
		"attempts":                          1.0,
		"http.response.body.size":           19.0,
		"duration_seconds":                  0.004,
		"upstream_duration_seconds":         0.003,
		"overhead_seconds":                  0.001,
		"http.request.header.x-request-id":  []any{"abc"},
		"http.response.header.content-type": []any{"text/plain"},
	}
	for k, v := range want {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if s := l.Stats(); s.Written != 1 || s.DroppedQueueFull != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A blocked output never blocks the request: once the queue is full the
// next record is dropped at once, and counted.
func TestBlockedWriterDropsAndCounts(t *testing.T) {
	w := newBlockingWriter()
	reg := prometheus.NewPedanticRegistry()
	warnings := &syncBuffer{}
	l := newTestLogger(t, testConfig(func(a *config.AccessLog) { a.BufferSize = 2 }), w, func(o *Options) {
		o.Registerer = reg
		o.Logger = slog.New(slog.NewTextHandler(warnings, nil))
	})

	// The writer takes the first record and blocks in Write.
	logOne(l, "users", sampleRecord())
	<-w.entered
	// Two more fill the queue.
	logOne(l, "users", sampleRecord())
	logOne(l, "users", sampleRecord())
	if n := l.queue.Len(); n != 2 {
		t.Fatalf("queue length %d, want 2", n)
	}
	// The next record must come back without waiting for the writer.
	done := make(chan struct{})
	go func() {
		logOne(l, "users", sampleRecord())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(w.release)
		t.Fatal("the middleware blocked on a full queue")
	}
	if s := l.Stats(); s.DroppedQueueFull != 1 {
		t.Fatalf("dropped = %d, want 1", s.DroppedQueueFull)
	}
	if got := metricValue(t, reg, "vantage_accesslog_records_dropped_total", "queue_full"); got != 1 {
		t.Fatalf("metric dropped{queue_full} = %v, want 1", got)
	}

	// The periodic report warns, once, with the count.
	l.reportDrops()
	l.reportDrops()
	if got := strings.Count(warnings.String(), "access log records dropped"); got != 1 {
		t.Fatalf("want one warning, got %d:\n%s", got, warnings.String())
	}
	if !strings.Contains(warnings.String(), "dropped=1 ") {
		t.Fatalf("warning lacks the count: %s", warnings.String())
	}

	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Written != 3 {
		t.Fatalf("written = %d, want 3", s.Written)
	}
	if got := strings.Count(w.out.String(), "\n"); got != 3 {
		t.Fatalf("output has %d lines, want 3", got)
	}
}

// metricValue returns the value of the counter or gauge name (with
// reason=reason when reason is not "") gathered from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					match = true
				}
			}
			if match {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{reason=%q}", name, reason)
	return 0
}

func TestCloseTimesOutOnBlockedOutput(t *testing.T) {
	w := newBlockingWriter()
	l := newTestLogger(t, testConfig(nil), w, func(o *Options) { o.CloseTimeout = time.Millisecond })
	logOne(l, "users", sampleRecord())
	<-w.entered
	err := l.Close()
	if err == nil || !strings.Contains(err.Error(), "the output is blocked") {
		t.Fatalf("Close = %v, want a timeout error", err)
	}
	if err2 := l.Close(); err2 != err {
		t.Fatalf("second Close = %v, want the first result", err2)
	}
	// After Close, records are dropped and counted.
	before := l.Stats().DroppedQueueFull
	logOne(l, "users", sampleRecord())
	if l.Stats().DroppedQueueFull != before+1 {
		t.Fatal("record after Close not counted as dropped")
	}
	close(w.release)
	<-l.queue.Done()
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestWriteErrorsAreCountedAndReported(t *testing.T) {
	warnings := &syncBuffer{}
	l := newTestLogger(t, testConfig(nil), failingWriter{}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(warnings, nil))
	})
	logOne(l, "users", sampleRecord())
	waitFor(t, "the write error", func() bool { return l.Stats().DroppedWriteError == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warnings.String(), "disk on fire") || !strings.Contains(warnings.String(), "reason=write_error") {
		t.Fatalf("warning: %s", warnings.String())
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	out := &syncBuffer{}
	l := newTestLogger(t, testConfig(nil), out, func(o *Options) { o.Registerer = reg })
	logOne(l, "users", sampleRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "vantage_accesslog_records_written_total", ""); got != 1 {
		t.Fatalf("written_total = %v, want 1", got)
	}
	if got := metricValue(t, reg, "vantage_accesslog_records_dropped_total", "write_error"); got != 0 {
		t.Fatalf("dropped_total{write_error} = %v, want 0", got)
	}
	if got := metricValue(t, reg, "vantage_accesslog_queue_length", ""); got != 0 {
		t.Fatalf("queue_length = %v, want 0", got)
	}
	// A second Logger on the same registry is refused, not a panic.
	if _, err := New(testConfig(nil), Options{Registerer: reg, Stdout: io.Discard}); err == nil {
		t.Fatal("duplicate registration accepted")
	}
}

func TestOutputs(t *testing.T) {
	for _, output := range []string{config.OutputStdout, config.OutputStderr} {
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		l, err := New(testConfig(func(a *config.AccessLog) { a.Output = output; a.Format = config.AccessLogCommon }),
			Options{Stdout: stdout, Stderr: stderr, Clock: clock.NewFake(t0)})
		if err != nil {
			t.Fatal(err)
		}
		logOne(l, "users", sampleRecord())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		got, other := stdout.String(), stderr.String()
		if output == config.OutputStderr {
			got, other = other, got
		}
		if !strings.HasPrefix(got, "203.0.113.7 - - [") || other != "" {
			t.Errorf("%s: got %q, other %q", output, got, other)
		}
	}
}

func TestDisabled(t *testing.T) {
	l, err := New(testConfig(func(a *config.AccessLog) { f := false; a.Enabled = &f }), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.ForRoute(routeOf("users")) != nil {
		t.Fatal("disabled logger returned a middleware")
	}
	if l.Reopen() != nil || l.Close() != nil {
		t.Fatal("disabled logger errors")
	}
	var nilLogger *Logger
	if nilLogger.ForRoute(routeOf("x")) != nil || nilLogger.Close() != nil {
		t.Fatal("nil logger")
	}
}

func TestRequestWithoutRecordIsNotLogged(t *testing.T) {
	out := &syncBuffer{}
	l := newTestLogger(t, testConfig(nil), out, nil)
	h := ended(l, l.ForRoute(routeOf("users")))(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, sampleRequest())
	if rw.Code != 204 {
		t.Fatalf("status %d", rw.Code)
	}
	l.Close()
	if out.String() != "" {
		t.Fatalf("logged %q", out.String())
	}
}

func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := New(testConfig(func(a *config.AccessLog) { a.Output = config.OutputFile; a.File.Path = path }),
		Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	rec := sampleRecord()
	rec.Route = "first"
	logOne(l, "first", rec)
	waitFor(t, "the first record", func() bool { return l.Stats().Written == 1 })

	// logrotate renames the file, then signals.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	rec = sampleRecord()
	rec.Route = "second"
	logOne(l, "second", rec)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !bytes.Contains(old, []byte(`"route":"first"`)) || bytes.Contains(old, []byte(`"second"`)) {
		t.Errorf("renamed file: %s", old)
	}
	if !bytes.Contains(cur, []byte(`"route":"second"`)) || bytes.Count(cur, []byte("\n")) != 1 {
		t.Errorf("new file: %s", cur)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != fileMode {
		t.Errorf("new file mode: %v %v", st.Mode(), err)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "access.log")
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	l, err := New(testConfig(func(a *config.AccessLog) { a.Output = config.OutputFile; a.File.Path = path }),
		Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Rename(filepath.Join(dir, "sub"), filepath.Join(dir, "moved"))
	if err := l.Reopen(); err == nil {
		t.Fatal("Reopen into a missing directory succeeded")
	}
	logOne(l, "users", sampleRecord())
	waitFor(t, "the record", func() bool { return l.Stats().Written == 1 })
	if b, _ := os.ReadFile(filepath.Join(dir, "moved", "access.log")); bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("old file did not keep receiving records: %q", b)
	}
}

func TestOpenFailure(t *testing.T) {
	_, err := New(testConfig(func(a *config.AccessLog) {
		a.Output = config.OutputFile
		a.File.Path = filepath.Join(t.TempDir(), "missing", "access.log")
	}), Options{})
	if err == nil || !strings.Contains(err.Error(), "access log: opening") {
		t.Fatalf("New = %v", err)
	}
}

func TestRotationBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	line := newEncoder(testConfig(nil), nil).encode(nil, sampleRecord(), sampleRequest(), nil)
	// Room for two records per file.
	maxSize := int64(2*len(line) + 10)
	l, err := New(testConfig(func(a *config.AccessLog) {
		a.Output = config.OutputFile
		a.File.Path = path
		a.File.MaxSize = config.ByteSize(maxSize)
		a.File.MaxBackups = 2
	}), Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	// Seven records, one write each: files of 2, 2, 2 and 1 records, the
	// oldest file deleted.
	for i := 1; i <= 7; i++ {
		logOne(l, "users", sampleRecord())
		waitFor(t, "a record", func() bool { return l.Stats().Written == uint64(i) })
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"access.log": 1, "access.log.1": 2, "access.log.2": 2} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Count(b, []byte("\n")); got != want {
			t.Errorf("%s has %d records, want %d", name, got, want)
		}
		if int64(len(b)) > maxSize {
			t.Errorf("%s is %d bytes, over max_size %d", name, len(b), maxSize)
		}
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("access.log.3 exists (max_backups 2): %v", err)
	}
}

func TestRouteFilters(t *testing.T) {
	cases := []struct {
		name            string
		routes, exclude []string
		logged          map[string]bool
	}{
		{"all", nil, nil, map[string]bool{"a": true, "b": true, "": true}},
		{"exclude", nil, []string{"b"}, map[string]bool{"a": true, "b": false, "": true}},
		{"only", []string{"a"}, nil, map[string]bool{"a": true, "b": false, "": false}},
		{"only and exclude", []string{"a", "b"}, []string{"b"}, map[string]bool{"a": true, "b": false, "": false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLogger(t, testConfig(func(a *config.AccessLog) {
				a.Filter.Routes, a.Filter.ExcludeRoutes = tc.routes, tc.exclude
			}), io.Discard, nil)
			defer l.Close()
			for route, want := range tc.logged {
				if got := l.ForRoute(middleware.Route{Name: route}) != nil; got != want {
					t.Errorf("route %q logged = %v, want %v", route, got, want)
				}
			}
		})
	}
}

// seq returns the values in order, then repeats the last.
func seq(vs ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vs[min(i, len(vs)-1)]
		i++
		return v
	}
}

func TestFilterAndSampling(t *testing.T) {
	ratio := func(r float64) *float64 { return &r }
	type req struct {
		status int
		dur    time.Duration
		kind   observe.ErrorKind
		want   bool
	}
	cases := []struct {
		name   string
		filter config.AccessLogFilter
		random func() float64
		reqs   []req
	}{
		{"default logs all", config.AccessLogFilter{}, nil, []req{
			{200, 0, 0, true}, {404, 0, 0, true}, {503, 0, 0, true},
		}},
		{"status codes and classes", config.AccessLogFilter{Status: []string{"5xx", "404"}}, nil, []req{
			{200, 0, 0, false}, {404, 0, 0, true}, {403, 0, 0, false}, {500, 0, 0, true}, {599, 0, 0, true},
		}},
		{"min duration", config.AccessLogFilter{MinDuration: config.Duration(100 * time.Millisecond)}, nil, []req{
			{200, 99 * time.Millisecond, 0, false}, {200, 100 * time.Millisecond, 0, true}, {500, time.Millisecond, 0, false},
		}},
		{"status or slow", config.AccessLogFilter{Status: []string{"5xx"}, MinDuration: config.Duration(time.Second)}, nil, []req{
			{200, 0, 0, false}, {502, 0, 0, true}, {200, 2 * time.Second, 0, true},
		}},
		{"sampling keeps errors", config.AccessLogFilter{SuccessSampleRatio: ratio(0.5)}, seq(0.2, 0.7, 0.49, 0.5, 0.99, 0.99, 0.99), []req{
			{200, 0, 0, true}, {200, 0, 0, false}, {302, 0, 0, true}, {204, 0, 0, false},
			{500, 0, 0, true}, {404, 0, 0, true}, {200, 0, observe.ErrClientCanceled, true},
		}},
		{"ratio zero logs only errors", config.AccessLogFilter{SuccessSampleRatio: ratio(0)}, seq(0), []req{
			{200, 0, 0, false}, {503, 0, 0, true},
		}},
		{"sampling after status", config.AccessLogFilter{Status: []string{"2xx", "5xx"}, SuccessSampleRatio: ratio(0.1)}, seq(0.05, 0.5), []req{
			{200, 0, 0, true}, {200, 0, 0, false}, {404, 0, 0, false}, {500, 0, 0, true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newFilter(tc.filter, tc.random)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range tc.reqs {
				rec := sampleRecord()
				rec.Status, rec.ErrorKind = r.status, r.kind
				rec.End = rec.Start.Add(r.dur)
				if got := f.keep(rec); got != r.want {
					t.Errorf("request %d (%d, %v, %v): keep = %v, want %v", i, r.status, r.dur, r.kind, got, r.want)
				}
			}
		})
	}
}

// The middleware applies the filter with the injected random source.
func TestMiddlewareSampling(t *testing.T) {
	out := &syncBuffer{}
	r := 0.5
	l := newTestLogger(t, testConfig(func(a *config.AccessLog) { a.Filter.SuccessSampleRatio = &r }), out,
		func(o *Options) { o.Random = seq(0.1, 0.9, 0.3, 0.8) })
	for range 4 {
		logOne(l, "users", sampleRecord())
	}
	failed := sampleRecord()
	failed.Status = 502
	logOne(l, "users", failed)
	l.Close()
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Fatalf("logged %d records, want 3 (2 sampled successes + 1 error):\n%s", got, out.String())
	}
}

// ended puts the gateway's end stage inside mw, as the gateway does, so
// that mw reads a finished Record.
func ended(l *Logger, mw middleware.Middleware) middleware.Middleware {
	if mw == nil {
		return nil
	}
	return func(next http.Handler) http.Handler { return mw(middleware.End(l.clock)(next)) }
}

// recordingTap keeps a copy of every line it is given (a unit-test fake of
// the trace store's Tap).
type recordingTap struct {
	want  func(*observe.Record) bool
	lines []string
}

func (t *recordingTap) WantsLog(rec *observe.Record) bool { return t.want(rec) }
func (t *recordingTap) TakeLog(_ *observe.Record, line []byte) {
	t.lines = append(t.lines, string(line))
}

// The tap gets the line the output writes, encoded once for both, and
// also the records the filter drops or that have no output.
func TestTapSharesTheOutputsLine(t *testing.T) {
	failedOnly := func(rec *observe.Record) bool { return rec.Status >= 500 }
	all := func(*observe.Record) bool { return true }
	cases := []struct {
		name    string
		cfg     config.AccessLog
		want    func(*observe.Record) bool
		tapped  int // of the two records: a 200, then a 502
		written int
		both    int // tapped lines the output wrote too, byte for byte
	}{
		{"output and tap", goldenConfig(config.AccessLogJSON), all, 2, 2, 2},
		{"tap wants one", goldenConfig(config.AccessLogJSON), failedOnly, 1, 2, 1},
		{"filter drops what the tap keeps", testConfig(func(a *config.AccessLog) { a.Filter.Status = []string{"5xx"} }), all, 2, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := &syncBuffer{}
			tap := &recordingTap{want: tc.want}
			l := newTestLogger(t, tc.cfg, out, func(o *Options) { o.Tap = tap })
			ok := sampleRecord()
			failed := sampleRecord()
			failed.Status = 502
			logOne(l, "users", ok)
			logOne(l, "users", failed)
			l.Close()
			written := strings.SplitAfter(out.String(), "\n")
			written = written[:len(written)-1]
			if len(tap.lines) != tc.tapped || len(written) != tc.written {
				t.Fatalf("tapped %d and wrote %d lines, want %d and %d:\ntap %q\nout %q", len(tap.lines), len(written), tc.tapped, tc.written, tap.lines, written)
			}
			both := 0
			for _, line := range tap.lines {
				if slices.Contains(written, line) {
					both++
				}
				if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
					t.Errorf("tapped line %q is not one whole line", line)
				}
			}
			if both != tc.both {
				t.Errorf("%d tapped lines are lines the output wrote, want %d:\ntap %q\nout %q", both, tc.both, tap.lines, written)
			}
		})
	}
}
