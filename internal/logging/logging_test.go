package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func recordCtx(valid bool) context.Context {
	rec := new(observe.Record)
	rec.Reset()
	rec.Trace = observe.TraceContext{
		TraceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		Valid:   valid,
	}
	return observe.NewContext(context.Background(), rec)
}

const wantTrace, wantSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

func decode(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	return m
}

func TestFormatsAndLevels(t *testing.T) {
	cases := []struct {
		level, format string
		logged        []string
	}{
		{"debug", "json", []string{"d", "i", "w", "e"}},
		{"info", "text", []string{"i", "w", "e"}},
		{"warn", "json", []string{"w", "e"}},
		{"error", "text", []string{"e"}},
	}
	for _, tc := range cases {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			l := New(config.Log{Level: tc.level, Format: tc.format}, &buf)
			l.Debug("d")
			l.Info("i")
			l.Warn("w")
			l.Error("e")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != len(tc.logged) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tc.logged), buf.String())
			}
			for i, line := range lines {
				if tc.format == "json" {
					if m := decode(t, line); m["msg"] != tc.logged[i] {
						t.Errorf("line %d msg = %v", i, m["msg"])
					}
				} else if !strings.Contains(line, "msg="+tc.logged[i]) {
					t.Errorf("line %d = %q", i, line)
				}
			}
		})
	}
}

func TestTraceIDsFromRecord(t *testing.T) {
	var buf bytes.Buffer
	l := New(config.Log{Level: "info", Format: "json"}, &buf)
	l.InfoContext(recordCtx(true), "upstream slow", "service", "users")
	m := decode(t, buf.String())
	if m["trace_id"] != wantTrace || m["span_id"] != wantSpan || m["service"] != "users" {
		t.Fatalf("got %v", m)
	}
}

func TestNoTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	l := New(config.Log{Level: "info", Format: "json"}, &buf)
	l.InfoContext(recordCtx(false), "tracing off")
	l.Info("no context")
	l.InfoContext(context.Background(), "background")
	if strings.Contains(buf.String(), "trace_id") {
		t.Fatalf("ids without a trace: %s", buf.String())
	}
}

func TestTraceIDsFromSpanContext(t *testing.T) {
	var buf bytes.Buffer
	l := New(config.Log{Level: "info", Format: "text"}, &buf)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	})
	l.WarnContext(trace.ContextWithSpanContext(context.Background(), sc), "health check failed")
	if !strings.Contains(buf.String(), "trace_id="+wantTrace+" span_id="+wantSpan) {
		t.Fatalf("got %q", buf.String())
	}
}

func TestTraceIDsStayTopLevelUnderGroups(t *testing.T) {
	var buf bytes.Buffer
	l := New(config.Log{Level: "info", Format: "json"}, &buf).
		With("component", "proxy").WithGroup("req").With("route", "users")
	l.InfoContext(recordCtx(true), "retry", "attempt", 2)
	l.Info("no trace", "attempt", 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	m := decode(t, lines[0])
	if m["trace_id"] != wantTrace || m["span_id"] != wantSpan || m["component"] != "proxy" {
		t.Fatalf("top level: %v", m)
	}
	g, _ := m["req"].(map[string]any)
	if g["route"] != "users" || g["attempt"] != 2.0 || g["trace_id"] != nil {
		t.Fatalf("group: %v", g)
	}
	m = decode(t, lines[1])
	if g, _ := m["req"].(map[string]any); g["attempt"] != 3.0 || m["trace_id"] != nil {
		t.Fatalf("second line: %v", m)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "": "INFO", "loud": "INFO"} {
		if got := ParseLevel(in).String(); got != want {
			t.Errorf("ParseLevel(%q) = %s, want %s", in, got, want)
		}
	}
}

func BenchmarkLog(b *testing.B) {
	var buf bytes.Buffer
	l := New(config.Log{Level: "info", Format: "json"}, &buf)
	ctx := recordCtx(true)
	b.Run("no_trace", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			l.Info("msg", "k", "v")
		}
	})
	b.Run("trace", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			l.InfoContext(ctx, "msg", "k", "v")
		}
	})
	b.Run("debug_disabled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.DebugContext(ctx, "msg", "k", "v")
		}
	})
}
