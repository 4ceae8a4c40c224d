package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

// The differential tests compare Table.Match with the linear matcher it
// replaced (linearTable, oracle_test.go) on random route sets and random
// requests built to land on and next to the routes' paths.

var (
	genListeners = []string{"l0", "l1", "l2"}
	genSegments  = []string{"a", "b", "api", "users", "v1", "A", "a.b", "x y", "%41", "-"}
	genHosts     = []string{"a.com", "b.a.com", "x.b.a.com", "shop.example.com", "example.com", "Shop.Example.com", "a.b"}
	genWilds     = []string{"*.a.com", "*.b.a.com", "*.example.com", "*.com", "*.b"}
	genMethods   = []string{"GET", "POST", "PUT", "DELETE"}
	genValues    = []string{"1", "2", "", "a b", "%zz", "x"}
	genRegexes   = []string{"1|2", "[a-z]+", ".*", "a b", "2"}
	genKeys      = []string{"x-v", "X-Other"}
	genQueryKeys = []string{"beta", "v", "a b", "k"}
)

// genRoutes returns n random routes. The vocabulary is small so that
// paths, hosts and conditions collide and overlap.
func genRoutes(rng *rand.Rand, n int) []config.Route {
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	routes := make([]config.Route, n)
	for i := range routes {
		r := &routes[i]
		r.Name = fmt.Sprintf("r%d", i)
		r.Service = "s"
		if rng.IntN(4) == 0 {
			for _, l := range genListeners {
				if rng.IntN(2) == 0 {
					r.Listeners = append(r.Listeners, l)
				}
			}
		}
		switch rng.IntN(8) {
		case 0:
			r.Priority = 1
		case 1:
			r.Priority = -1
		case 2:
			r.Priority = rng.IntN(5)
		}
		for range rng.IntN(4) - 1 { // none half the time
			if rng.IntN(3) == 0 {
				r.Match.Hosts = append(r.Match.Hosts, pick(genWilds))
			} else {
				r.Match.Hosts = append(r.Match.Hosts, pick(genHosts))
			}
		}
		segs := make([]string, rng.IntN(4))
		for j := range segs {
			segs[j] = pick(genSegments)
			if rng.IntN(10) == 0 {
				segs[j] = ""
			}
		}
		switch rng.IntN(6) {
		case 0: // any path
		case 1:
			r.Match.Path = "/" + strings.Join(segs, "/")
		case 2:
			p := "/" + strings.Join(segs, "/")
			if rng.IntN(2) == 0 && !strings.HasSuffix(p, "/") {
				p += "/"
			}
			r.Match.PathPrefix = p
		default:
			if len(segs) == 0 {
				segs = []string{pick(genSegments)}
			}
			vars := 0
			for j := range segs {
				if rng.IntN(2) == 0 {
					segs[j] = fmt.Sprintf("{v%d}", vars)
					vars++
				}
			}
			if vars == 0 || rng.IntN(3) == 0 {
				segs = append(segs, "{rest...}")
			}
			r.Match.Path = "/" + strings.Join(segs, "/")
		}
		if rng.IntN(4) == 0 {
			for range 1 + rng.IntN(2) {
				r.Match.Methods = append(r.Match.Methods, pick(genMethods))
			}
		}
		for range max(0, rng.IntN(5)-2) {
			r.Match.Headers = append(r.Match.Headers, genKV(rng, genKeys))
		}
		for range max(0, rng.IntN(5)-2) {
			r.Match.Query = append(r.Match.Query, genKV(rng, genQueryKeys))
		}
	}
	return routes
}

func genKV(rng *rand.Rand, keys []string) config.KeyValueMatch {
	kv := config.KeyValueMatch{Name: keys[rng.IntN(len(keys))]}
	switch rng.IntN(4) {
	case 0:
		kv.Value = genValues[rng.IntN(len(genValues))]
	case 1:
		kv.Regex = genRegexes[rng.IntN(len(genRegexes))]
	case 2:
		kv.Absent = true
	}
	return kv
}

// genRequest returns a request on a random listener, most of the time for
// a path derived from one of the routes and then bent into a near miss.
func genRequest(rng *rand.Rand, routes []config.Route) (string, *http.Request) {
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	var path string
	if len(routes) > 0 && rng.IntN(5) != 0 {
		m := routes[rng.IntN(len(routes))].Match
		path = m.Path + m.PathPrefix
		var segs []string
		if path != "" {
			segs = strings.Split(path[1:], "/")
		}
		for j, s := range segs {
			if strings.HasPrefix(s, "{") {
				switch rng.IntN(4) {
				case 0:
					segs[j] = ""
				default:
					segs[j] = pick(genSegments)
				}
			}
		}
		if path == "" {
			segs = []string{pick(genSegments)}
		}
		path = "/" + strings.Join(segs, "/")
		for range rng.IntN(3) {
			path = nearMiss(rng, path)
		}
	} else {
		var b strings.Builder
		for range rng.IntN(5) {
			b.WriteString("/" + pick(genSegments))
		}
		path = b.String()
		if rng.IntN(10) == 0 {
			path = strings.TrimPrefix(path, "/") // "*" and other odd forms
		}
	}
	host := ""
	switch rng.IntN(6) {
	case 0:
	case 1:
		host = "q." + pick(genHosts)
	case 2:
		host = strings.ToUpper(pick(genHosts))
	default:
		host = pick(genHosts)
	}
	switch rng.IntN(8) {
	case 0:
		host += ":8080"
	case 1:
		host += "."
	case 2:
		host = "[" + host + "]:1"
	case 3:
		host = "x." + host
	}
	r := &http.Request{Method: pick(genMethods), Host: host, Header: http.Header{}, URL: &url.URL{Path: path}}
	for range rng.IntN(3) {
		r.Header.Add(http.CanonicalHeaderKey(pick(genKeys)), pick(genValues))
	}
	var q []string
	for range rng.IntN(4) {
		k, v := pick(genQueryKeys), pick(genValues)
		switch rng.IntN(6) {
		case 0:
			k = strings.ReplaceAll(k, " ", "+")
		case 1:
			k = strings.ReplaceAll(k, " ", "%20")
		case 2:
			v += ";x"
		}
		if rng.IntN(5) == 0 {
			q = append(q, k)
		} else {
			q = append(q, k+"="+strings.ReplaceAll(v, " ", "+"))
		}
	}
	r.URL.RawQuery = strings.Join(q, "&")
	return pick(genListeners), r
}

// nearMiss bends a path into one that may or may not match what the
// original did: trailing slashes, cut segments and characters, case,
// empty segments, added segments.
func nearMiss(rng *rand.Rand, p string) string {
	switch rng.IntN(8) {
	case 0:
		return p + "/"
	case 1:
		return strings.TrimSuffix(p, "/")
	case 2:
		if len(p) > 1 {
			return p[:len(p)-1]
		}
	case 3:
		return strings.ToUpper(p)
	case 4:
		return strings.Replace(p, "/", "//", 1)
	case 5:
		return p + "/" + genSegments[rng.IntN(len(genSegments))]
	case 6:
		if i := strings.LastIndexByte(p, '/'); i > 0 {
			return p[:i]
		}
	case 7:
		return p + genSegments[rng.IntN(len(genSegments))]
	}
	return p
}

// compileBoth compiles routes into a Table and the linear oracle over the
// same compiled routes.
func compileBoth(t testing.TB, routes []config.Route) (*Table, *linearTable) {
	t.Helper()
	tbl, err := Compile(routes, genListeners)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, newLinear(tbl, genListeners)
}

func describe(rt *Route) string {
	if rt == nil {
		return "no route"
	}
	m := rt.Config.Match
	return fmt.Sprintf("%s (priority %d, listeners %v, hosts %v, path %q, prefix %q, methods %v, headers %+v, query %+v)",
		rt.Name, rt.priority, rt.Config.Listeners, m.Hosts, m.Path, m.PathPrefix, m.Methods, m.Headers, m.Query)
}

func checkSame(t testing.TB, tbl *Table, lin *linearTable, listener string, r *http.Request) {
	t.Helper()
	got, want := tbl.Match(listener, r), lin.Match(listener, r)
	if got != want {
		t.Fatalf("%s host %q path %q query %q headers %v on %s:\n got  %s\n want %s",
			r.Method, r.Host, r.URL.Path, r.URL.RawQuery, r.Header, listener, describe(got), describe(want))
	}
}

// TestMatchAgreesWithLinear: 400 seeded route sets of 1 to 60 routes, 300
// requests each.
func TestMatchAgreesWithLinear(t *testing.T) {
	matched := 0
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 21))
		routes := genRoutes(rng, 1+rng.IntN(60))
		tbl, lin := compileBoth(t, routes)
		for range 300 {
			listener, r := genRequest(rng, routes)
			checkSame(t, tbl, lin, listener, r)
			if lin.Match(listener, r) != nil {
				matched++
			}
		}
	}
	// The requests must exercise matches, not only misses.
	if matched < 400*300/4 {
		t.Fatalf("only %d of %d requests matched a route", matched, 400*300)
	}
}

// FuzzMatch compares Table.Match with the linear matcher on a route set
// drawn from seed plus routes made of the fuzzed path (as an exact path or
// template, and as a prefix), for a fuzzed request.
func FuzzMatch(f *testing.F) {
	f.Add(uint64(1), "GET", "/api/users/42", "shop.example.com", "beta=1", "2")
	f.Add(uint64(2), "POST", "//files//", "[::1]:80", "a+b=x%20y&v=1;2", "")
	f.Add(uint64(3), "GET", "/", "*.example.com", "", "3")
	f.Add(uint64(4), "GET", "*", "X.B.A.COM.", "k&k=%zz", "1")
	f.Add(uint64(5), "PUT", "/a/{v0}/{rest...}", "a.com:1", "beta", "a b")
	f.Fuzz(func(t *testing.T, seed uint64, method, path, host, rawQuery, hdr string) {
		rng := rand.New(rand.NewPCG(seed, 21))
		routes := genRoutes(rng, 1+rng.IntN(30))
		if config.CheckPathTemplate(path) == nil {
			routes = append(routes, config.Route{Name: "fuzz-path", Service: "s", Match: config.Match{Path: path}})
		}
		if strings.HasPrefix(path, "/") {
			routes = append(routes, config.Route{Name: "fuzz-prefix", Service: "s", Match: config.Match{PathPrefix: path}})
		}
		tbl, lin := compileBoth(t, routes)
		r := &http.Request{Method: method, Host: host, Header: http.Header{"X-V": {hdr}}, URL: &url.URL{Path: path, RawQuery: rawQuery}}
		for _, l := range genListeners {
			checkSame(t, tbl, lin, l, r)
		}
		// And a request for a path of the route set, with the fuzzed rest.
		_, r2 := genRequest(rng, routes)
		r2.Method, r2.Host, r2.URL.RawQuery = method, host, rawQuery
		checkSame(t, tbl, lin, genListeners[rng.IntN(len(genListeners))], r2)
	})
}
