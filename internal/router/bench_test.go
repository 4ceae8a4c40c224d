package router

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

// estate returns n routes without hosts, their kinds in turn: an exact
// path "/svc{i}", a prefix "/svc{i}/static/" and a template
// "/svc{i}/items/{id}", one service each.
func estate(n int) []config.Route {
	routes := make([]config.Route, n)
	for i := range routes {
		r := &routes[i]
		r.Name = fmt.Sprintf("svc%d", i)
		r.Service = r.Name
		switch i % 3 {
		case 0:
			r.Match.Path = fmt.Sprintf("/svc%d", i)
		case 1:
			r.Match.PathPrefix = fmt.Sprintf("/svc%d/static/", i)
		case 2:
			r.Match.Path = fmt.Sprintf("/svc%d/items/{id}", i)
		}
	}
	return routes
}

var estateSizes = []int{10, 100, 1000, 10000, 100000}

// BenchmarkMatch matches requests against estates of 10 to 100,000 routes
// with the tree (Table.Match) and with the linear matcher it replaced, for
// the first route of the file, the last (both exact paths), a template and
// a prefix route near the end, and a path no route takes. With n = 10^k,
// route n-1 is an exact path, n-2 a template and n-3 a prefix.
func BenchmarkMatch(b *testing.B) {
	for _, n := range estateSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tbl, err := Compile(estate(n), []string{"l"})
			if err != nil {
				b.Fatal(err)
			}
			lin := newLinear(tbl, []string{"l"})
			cases := []struct{ name, path, want string }{
				{"first", "/svc0", "svc0"},
				{"last", fmt.Sprintf("/svc%d", n-1), fmt.Sprintf("svc%d", n-1)},
				{"template", fmt.Sprintf("/svc%d/items/42", n-2), fmt.Sprintf("svc%d", n-2)},
				{"prefix", fmt.Sprintf("/svc%d/static/app.js", n-3), fmt.Sprintf("svc%d", n-3)},
				{"none", "/nosuch/items/42", ""},
			}
			for _, c := range cases {
				r := &http.Request{Method: "GET", Host: "gw.example.com", Header: http.Header{}, URL: &url.URL{Path: c.path}}
				for _, m := range []struct {
					name  string
					match func(string, *http.Request) *Route
				}{{"tree", tbl.Match}, {"linear", lin.Match}} {
					b.Run(c.name+"/"+m.name, func(b *testing.B) {
						b.ReportAllocs()
						for b.Loop() {
							rt := m.match("l", r)
							if (rt == nil && c.want != "") || (rt != nil && rt.Name != c.want) {
								b.Fatalf("matched %v, want %q", rt, c.want)
							}
						}
					})
				}
			}
		})
	}
}

// BenchmarkCompile compiles estates of 10 to 100,000 routes; "linear" is
// the compile of the linear matcher (the same compiled routes, sorted and
// listed per host).
func BenchmarkCompile(b *testing.B) {
	for _, n := range estateSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			routes := estate(n)
			b.Run("tree", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Compile(routes, []string{"l"}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("linear", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					t := &Table{}
					for i := range routes {
						rt, err := compileRoute(&routes[i], i)
						if err != nil {
							b.Fatal(err)
						}
						t.routes = append(t.routes, rt)
					}
					newLinear(t, []string{"l"})
				}
			})
		})
	}
}
