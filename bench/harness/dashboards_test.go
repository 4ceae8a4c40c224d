package harness

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseVariant(t *testing.T) {
	for _, c := range []struct {
		in   string
		base string
		n    int
		bad  bool
	}{
		{"full", "full", 0, false},
		{"full+dash5", "full", 5, false},
		{"plain+dash1", "plain", 1, false},
		{"full+dash0", "", 0, true},
		{"full+dash33", "", 0, true},
		{"full+dash", "", 0, true},
		{"full+five", "", 0, true},
		{"+dash5", "", 0, true},
		{"full+dash+5", "", 0, true},
		{"full+dash-5", "", 0, true},
	} {
		base, n, err := ParseVariant(c.in)
		if (err != nil) != c.bad || base != c.base || n != c.n {
			t.Errorf("%q: %q %d %v", c.in, base, n, err)
		}
	}
}

func FuzzParseVariant(f *testing.F) {
	for _, s := range []string{"full", "full+dash5", "x+dash32", "+", "a+dash", "a+dash99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base, n, err := ParseVariant(s)
		if err == nil && (n < 0 || n > MaxDashboards || (n > 0 && !strings.HasPrefix(s, base+"+dash"))) {
			t.Fatalf("%q: %q %d", s, base, n)
		}
	})
}

// TestOpenDashboards: every stream receives events from a real SSE
// server and Close ends them.
func TestOpenDashboards(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/dashboard/stream" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := 0; i < 100; i++ {
			fmt.Fprintf(w, "event: overview\ndata: {}\n\n")
			if rc.Flush() != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	d, err := OpenDashboards(context.Background(), addr, 3, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Events() < 3 {
		t.Errorf("events %d, want at least one per stream", d.Events())
	}
	d.Close()
	if _, err := OpenDashboards(context.Background(), addr+"/nothing", 1, 5*time.Second); err == nil {
		t.Error("a stream answered 404 opened")
	}
}
