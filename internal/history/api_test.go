package history

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	latest := t0.Add(time.Hour)
	for _, tc := range []struct {
		in      string
		want    string // error substring, "" for success
		from    time.Time
		to      time.Time
		step    time.Duration
		scope   Scope
		name    string
		nSeries int
	}{
		{in: "", from: latest.Add(-5 * time.Minute), to: latest, step: time.Second, scope: ScopeGateway, nSeries: 4},
		{in: "scope=route&name=shop&window=1h", from: latest.Add(-time.Hour), to: latest, step: 12 * time.Second, scope: ScopeRoute, name: "shop", nSeries: 4},
		{in: "scope=leg&name=shop/canary&window=10s&step=10s&series=requests,latency", from: latest.Add(-10 * time.Second), to: latest, step: 10 * time.Second, scope: ScopeLeg, name: "shop/canary", nSeries: 2},
		{in: "window=24h", from: latest.Add(-24 * time.Hour), to: latest, step: 4 * time.Minute, scope: ScopeGateway, nSeries: 4},
		{in: "from=" + itoa(t0.Unix()) + "&to=2026-03-01T12:00:30Z&step=5s&series=all", from: t0, to: t0.Add(30 * time.Second), step: 5 * time.Second, scope: ScopeGateway, nSeries: len(seriesGroups)},
		{in: "window=10s&step=1m", from: latest.Add(-10 * time.Second), to: latest, step: 10 * time.Second, scope: ScopeGateway, nSeries: 4},
		{in: "scope=nope", want: "scope: unknown scope"},
		{in: "scope=route", want: "name: scope route needs a name"},
		{in: "name=x", want: "name: the gateway scope takes no name"},
		{in: "scope=leg&name=shop", want: "a leg is named route/service"},
		{in: "scope=host&name=users", want: "a host is named service/host:port"},
		{in: "series=bogus", want: `series: unknown series "bogus"`},
		{in: "window=5", want: "window: want a duration"},
		{in: "window=-5m", want: "window: must be positive"},
		{in: "window=1m&from=0", want: "give either window or from"},
		{in: "step=1500ms", want: "step: must be a whole number of seconds"},
		{in: "step=0s", want: "step: must be positive"},
		{in: "from=2026-03-01T14:00:00Z", want: "from: must be before to"},
		{in: "to=yesterday", want: "to: want RFC 3339"},
		{in: "window=48h&step=1s", want: "at most 10000 are allowed"},
		{in: "window=500ms", want: "window: must be at least 1s"},
		{in: "from=1772366400&to=1772366400", want: "from: must be before to"},
		{in: "bogus=1", want: `unknown parameter "bogus"`},
		{in: "scope=route&scope=leg", want: "given 2 times"},
		{in: "name=" + strings.Repeat("x", 300), want: "longer than 256 bytes"},
	} {
		v, err := url.ParseQuery(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseQuery(v, latest)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !q.From.Equal(tc.from) || !q.To.Equal(tc.to) || q.Step != tc.step || q.Scope != tc.scope || q.Name != tc.name || len(q.series) != tc.nSeries {
			t.Errorf("%q: got %v..%v step %v %s %q %d series; want %v..%v step %v %s %q %d",
				tc.in, q.From, q.To, q.Step, q.Scope, q.Name, len(q.series), tc.from, tc.to, tc.step, tc.scope, tc.name, tc.nSeries)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// FuzzParseQuery checks that any query string either parses into a valid
// query or is refused with an error naming a parameter, and never panics.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "scope=route&name=shop&window=1h", "scope=leg&name=a/b&window=10s&step=10s&series=requests,latency",
		"from=1700000000&to=1700000060&step=5s&series=all", "window=24h", "to=2026-03-01T12:00:30Z",
		"step=1500ms", "window=-1s", "scope=host&name=s/h:1", "series=,", "from=99999999999999", "to=0001-01-01T00:00:00Z",
	} {
		f.Add(s)
	}
	latest := t0.Add(time.Hour)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		q, err := parseQuery(v, latest)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := q.Query.Validate(); err != nil {
			t.Fatalf("%q parsed into an invalid query: %v", s, err)
		}
		if q.Step <= 0 || q.Step%time.Second != 0 || !q.From.Before(q.To) || len(q.series) == 0 {
			t.Fatalf("%q: %+v", s, q)
		}
	})
}
