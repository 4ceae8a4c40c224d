package harness

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		file string
		want WrkResult
	}{
		{"testdata/wrk_latency.txt", WrkResult{
			Requests: 84409, Elapsed: 2 * time.Second, RequestsPerSec: 42171.42,
			P50: 294 * time.Microsecond, P75: 464 * time.Microsecond,
			P90: 1300 * time.Microsecond, P99: 4410 * time.Microsecond,
		}},
		{"testdata/wrk_errors.txt", WrkResult{
			Requests: 15, Elapsed: 3 * time.Second, RequestsPerSec: 5,
			P50: 1500 * time.Millisecond, P75: 1800 * time.Millisecond,
			P90: 1950 * time.Millisecond, P99: 1990 * time.Millisecond,
			Non2xx: 4, SocketErrors: 9,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseWrk(string(b))
			if err != nil {
				t.Fatalf("ParseWrk: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseWrk =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseWrkErrors(t *testing.T) {
	b, err := os.ReadFile("testdata/wrk_latency.txt")
	if err != nil {
		t.Fatal(err)
	}
	full := string(b)
	noLatency := full[:strings.Index(full, "  Latency Distribution")] + full[strings.Index(full, "  84409"):]
	tests := []struct {
		name, out, wantErr string
	}{
		{"empty", "", `lacks "N requests in T", "Requests/sec"`},
		{"no --latency", noLatency, "50% latency (was --latency given?)"},
		{"bad percentile", strings.Replace(full, "294.00us", "294.00xs", 1), "unknown unit"},
		{"bad count", strings.Replace(full, "84409 requests", "8x requests", 1), "request count"},
		{"bad socket errors", full + "  Socket errors: connect x, read 0\n", "socket errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWrk(tt.out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseWrk error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"294.00us", 294 * time.Microsecond, true},
		{"1.30ms", 1300 * time.Microsecond, true},
		{"10.00s", 10 * time.Second, true},
		{"1.50m", 90 * time.Second, true},
		{"2.00h", 2 * time.Hour, true},
		{"12", 0, false},
		{"ms", 0, false},
		{"1.0d", 0, false},
		{"1..2ms", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseWrkDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseWrkDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzParseWrk checks the parser never panics on arbitrary output.
func FuzzParseWrk(f *testing.F) {
	for _, p := range []string{"testdata/wrk_latency.txt", "testdata/wrk_errors.txt"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, out string) {
		_, _ = ParseWrk(out) // must not panic
	})
}
