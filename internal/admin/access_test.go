package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

const (
	adminToken    = "adm-6b1f0d2e9c4a7b3f"
	readOnlyToken = "ro-0a9e8d7c6b5a4f3e"
	userPassword  = "pw-c4f1e2d3b5a6"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveAdmin serves an admin handler on a real 127.0.0.1 socket and
// returns its address. posted counts the requests that reached the mounted
// OTLP-like receiver and POST /api/reload.
func serveAdmin(t *testing.T, acc Access, logs io.Writer, clk clock.Clock) (addr string, posted *int) {
	t.Helper()
	cfg, err := config.Parse("f.yml", []byte("listeners: [{address: \"127.0.0.1:1\"}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var mu sync.Mutex
	count := func() { mu.Lock(); n++; mu.Unlock() }
	h := New(&fakeGateway{cfg: cfg}, Options{
		Reload: func() error { count(); return nil },
		Access: acc,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Clock:  clk,
		Extra: map[string]http.Handler{"POST /v1/traces": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			count()
			w.WriteHeader(http.StatusOK)
		})},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.SetAddr(ln.Addr().String())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), &n
}

type req struct {
	method, path, host string
	header             map[string]string
}

func send(t *testing.T, addr string, q req) *http.Response {
	t.Helper()
	r, err := http.NewRequest(q.method, "http://"+addr+q.path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if q.host != "" {
		r.Host = q.host
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestHostCheck(t *testing.T) {
	addr, _ := serveAdmin(t, Access{Hosts: []string{"admin.internal", "ops.example:8443"}}, io.Discard, nil)
	_, port, _ := net.SplitHostPort(addr)
	for host, want := range map[string]int{
		"":                          200, // the client sends the dialled address
		"127.0.0.1:" + port:         200,
		"localhost:" + port:         200,
		"LOCALHOST.:" + port:        200,
		"[::1]:" + port:             200,
		"admin.internal":            200,
		"admin.internal:" + port:    200,
		"ops.example:8443":          200,
		"evil.example:" + port:      StatusWrongHost, // DNS rebinding
		"evil.example":              StatusWrongHost,
		"127.0.0.1:1" + port:        StatusWrongHost, // another port
		"localhost":                 StatusWrongHost, // port 80 implied
		"admin.internal:1":          StatusWrongHost,
		"ops.example":               StatusWrongHost,
		"10.1.2.3:" + port:          StatusWrongHost, // bound to 127.0.0.1 only
		"127.0.0.1.evil.example:80": StatusWrongHost,
	} {
		if got := send(t, addr, req{method: "GET", path: "/healthz", host: host}).StatusCode; got != want {
			t.Errorf("Host %q: status %d, want %d", host, got, want)
		}
	}
	// The check covers everything mounted, not only the API.
	if got := send(t, addr, req{method: "POST", path: "/v1/traces", host: "evil.example:" + port}).StatusCode; got != StatusWrongHost {
		t.Errorf("receiver with a wrong Host: %d", got)
	}
}

func TestHostCheckWildcardBind(t *testing.T) {
	g := newGuard(Access{}, nil, nil)
	g.setAddr("0.0.0.0:9901")
	for host, want := range map[string]bool{
		"10.1.2.3:9901": true, "[fd00::1]:9901": true, "127.0.0.1:9901": true,
		"10.1.2.3:9902": false, "rebind.example:9901": false,
	} {
		if got := g.hostAllowed(host); got != want {
			t.Errorf("wildcard bind, Host %q: %v, want %v", host, got, want)
		}
	}
}

func TestCrossOriginRefused(t *testing.T) {
	addr, posted := serveAdmin(t, Access{}, io.Discard, nil)
	cases := []struct {
		name   string
		q      req
		want   int
		counts bool
	}{
		{"cross-site POST", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": "http://evil.example"}}, 403, false},
		{"null origin", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": "null"}}, 403, false},
		{"fetch metadata cross-site", req{method: "POST", path: "/api/reload", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, false},
		{"fetch metadata same-site", req{method: "PUT", path: "/api/routes/checkout/split", header: map[string]string{"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}}, 403, false},
		{"rebound origin", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": "http://localhost:1"}}, 403, false},
		{"same-origin POST", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": "http://" + addr, "Sec-Fetch-Site": "same-origin"}}, 200, true},
		{"same-origin POST through a TLS proxy", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": "https://" + addr}}, 200, true},
		{"origin with a path", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": "http://" + addr + "/x"}}, 403, false},
		{"origin without scheme", req{method: "POST", path: "/api/reload", header: map[string]string{"Origin": addr}}, 403, false},
		{"curl POST", req{method: "POST", path: "/api/reload"}, 200, true},
		{"receiver POST without Origin", req{method: "POST", path: "/v1/traces"}, 200, true},
		{"cross-site receiver POST", req{method: "POST", path: "/v1/traces", header: map[string]string{"Origin": "http://evil.example"}}, 403, false},
		{"cross-site GET", req{method: "GET", path: "/api/routes", header: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}}, 200, false},
	}
	for _, c := range cases {
		before := *posted
		if got := send(t, addr, c.q).StatusCode; got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
		if reached := *posted > before; reached != c.counts {
			t.Errorf("%s: reached the handler: %v", c.name, reached)
		}
	}
}

func TestAuthentication(t *testing.T) {
	logs := &lockedBuf{}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	addr, posted := serveAdmin(t, Access{Credentials: []Credential{
		{Name: "ci", Role: RoleAdmin, Token: adminToken},
		{Name: "viewer", Role: RoleReadOnly, Token: readOnlyToken},
		{Name: "ops", Role: RoleAdmin, Username: "ops", Password: userPassword},
	}}, logs, clk)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	cases := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no credentials", "GET", "/api/routes", "", 401},
		{"wrong token", "GET", "/api/routes", "Bearer " + adminToken + "x", 401},
		{"token prefix", "GET", "/api/routes", "Bearer " + adminToken[:8], 401},
		{"empty bearer", "GET", "/api/routes", "Bearer ", 401},
		{"wrong password", "GET", "/api/routes", basic("ops", userPassword+"!"), 401},
		{"unknown user", "GET", "/api/routes", basic("root", userPassword), 401},
		{"token as password", "GET", "/api/routes", basic("ci", adminToken), 401},
		{"bad base64", "GET", "/api/routes", "Basic !!!", 401},
		{"no credentials POST", "POST", "/api/reload", "", 401},
		{"receiver without token", "POST", "/v1/traces", "", 401},
		{"admin token", "GET", "/api/routes", "Bearer " + adminToken, 200},
		{"bearer scheme in lower case", "GET", "/api/routes", "bearer " + adminToken, 200},
		{"read-only GET", "GET", "/api/config", "Bearer " + readOnlyToken, 200},
		{"read-only HEAD", "HEAD", "/healthz", "Bearer " + readOnlyToken, 200},
		{"read-only POST", "POST", "/api/reload", "Bearer " + readOnlyToken, 403},
		{"read-only PUT", "PUT", "/api/routes/checkout/split", "Bearer " + readOnlyToken, 403},
		{"read-only receiver POST", "POST", "/v1/traces", "Bearer " + readOnlyToken, 403},
		{"admin POST", "POST", "/api/reload", "Bearer " + adminToken, 200},
		{"basic-auth admin POST", "POST", "/api/reload", basic("ops", userPassword), 200},
		{"receiver with token", "POST", "/v1/traces", "Bearer " + adminToken, 200},
	}
	for _, c := range cases {
		before := *posted
		q := req{method: c.method, path: c.path, header: map[string]string{}}
		if c.auth != "" {
			q.header["Authorization"] = c.auth
		}
		resp := send(t, addr, q)
		clk.Advance(deniedWindow + time.Second) // every refusal is logged
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want == 401 {
			got := resp.Header.Values("WWW-Authenticate")
			if len(got) != 2 || !strings.HasPrefix(got[0], "Bearer realm=") || !strings.HasPrefix(got[1], "Basic realm=") {
				t.Errorf("%s: WWW-Authenticate %q", c.name, got)
			}
		}
		if c.want != 200 && *posted != before {
			t.Errorf("%s: a refused request reached the handler", c.name)
		}
	}
	out := logs.String()
	for _, secret := range []string{adminToken, readOnlyToken, userPassword, adminToken[:8], base64.StdEncoding.EncodeToString([]byte("ops:" + userPassword))} {
		if strings.Contains(out, secret) {
			t.Errorf("credential %q in the log:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"reason":"unauthenticated"`) || !strings.Contains(out, `"reason":"read_only","method":"POST","path":"/api/reload"`) || !strings.Contains(out, `"credential":"viewer"`) {
		t.Errorf("refusals not logged as expected:\n%s", out)
	}
}

// Without configured credentials, only a Bearer challenge is offered...
// and nothing asks for one: loopback without auth is open.
func TestNoCredentialsIsOpen(t *testing.T) {
	addr, _ := serveAdmin(t, Access{}, io.Discard, nil)
	if got := send(t, addr, req{method: "POST", path: "/api/reload"}).StatusCode; got != 200 {
		t.Fatalf("status %d", got)
	}
}

func TestDeniedLogIsBounded(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	logs := &lockedBuf{}
	d := newDeniedLog(slog.New(slog.NewJSONHandler(logs, nil)), clk)
	r, _ := http.NewRequest("GET", "http://x/api?token=abc", nil)
	for range 100 {
		d.denied(r, "unauthenticated", "")
	}
	if n := strings.Count(logs.String(), "\n"); n != deniedBurst {
		t.Fatalf("%d lines in one window, want %d", n, deniedBurst)
	}
	clk.Advance(deniedWindow + time.Second)
	d.denied(r, "unauthenticated", "")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"suppressed":90`) {
		t.Fatalf("next window's line: %s", last)
	}
	if strings.Contains(logs.String(), "token=abc") {
		t.Fatal("the query was logged")
	}
}

func TestAccessFromConfig(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/token"
	if err := os.WriteFile(file, []byte(readOnlyToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		if k == "ADMIN_TOKEN" {
			return adminToken, true
		}
		return "", false
	}
	cfg, err := config.Parse("f.yml", []byte(`
listeners: [{address: "127.0.0.1:1"}]
admin:
  address: "127.0.0.1:0"
  allowed_hosts: [admin.internal]
  auth:
    tokens:
      - {name: ci, token: "${ADMIN_TOKEN}"}
      - {name: viewer, role: read_only, token_file: "`+file+`"}
    users:
      - {username: ops, password: "`+userPassword+`", role: read_only}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := AccessFromConfig(cfg.Admin)
	if err != nil {
		t.Fatal(err)
	}
	want := []Credential{
		{Name: "ci", Role: RoleAdmin, Token: adminToken},
		{Name: "viewer", Role: RoleReadOnly, Token: readOnlyToken},
		{Name: "ops", Role: RoleReadOnly, Username: "ops", Password: userPassword},
	}
	if len(acc.Credentials) != len(want) || len(acc.Hosts) != 1 {
		t.Fatalf("got %+v", acc)
	}
	for i := range want {
		if acc.Credentials[i] != want[i] {
			t.Errorf("credential %d: %+v, want %+v", i, acc.Credentials[i], want[i])
		}
	}
	// The effective config the API shows has no credential in it.
	code, body := do(t, New(&fakeGateway{cfg: cfg}, Options{Access: acc}), "GET", "/api/config", "", "")
	if code != 401 {
		t.Fatalf("unauthenticated /api/config: %d", code)
	}
	shown, err := json.Marshal(Redact(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{adminToken, readOnlyToken, userPassword} {
		if strings.Contains(string(shown)+body, s) {
			t.Errorf("credential in /api/config: %s", shown)
		}
	}
}

// FuzzGuard feeds arbitrary Host, Origin and Authorization headers to the
// checks: they must not panic, and only the exact configured credentials
// authenticate.
func FuzzGuard(f *testing.F) {
	f.Add("127.0.0.1:9901", "http://127.0.0.1:9901", "Bearer "+adminToken, "POST")
	f.Add("[::1]:9901", "null", "Basic b3BzOnB3", "GET")
	f.Add("[", "https://", "Bearer", "PUT")
	f.Add("admin.internal.", "HTTP://ADMIN.INTERNAL", "basic Og==", "DELETE")
	g := newGuard(Access{Hosts: []string{"admin.internal", "[fd00::1]:8443"}, Credentials: []Credential{
		{Name: "ci", Role: RoleAdmin, Token: adminToken},
		{Name: "ops", Role: RoleReadOnly, Username: "ops", Password: userPassword},
	}}, nil, nil)
	g.setAddr("127.0.0.1:9901")
	f.Fuzz(func(t *testing.T, host, origin, auth, method string) {
		r := &http.Request{Method: method, Host: host, Header: http.Header{}, URL: &url.URL{Path: "/"}}
		r.Header.Set("Origin", origin)
		r.Header.Set("Authorization", auth)
		_ = g.hostAllowed(host)
		_ = sameOrigin(r)
		role, name, ok := g.authenticate(r)
		if ok {
			scheme, rest, _ := strings.Cut(auth, " ")
			rest = strings.TrimSpace(rest)
			switch {
			case name == "ci" && role == RoleAdmin && strings.EqualFold(scheme, "bearer") && rest == adminToken:
			case name == "ops" && role == RoleReadOnly && strings.EqualFold(scheme, "basic"):
				if b, _ := base64.StdEncoding.DecodeString(rest); string(b) != "ops:"+userPassword {
					t.Fatalf("basic %q authenticated", b)
				}
			default:
				t.Fatalf("%q authenticated as %s", auth, name)
			}
		}
		w := &discardWriter{h: http.Header{}}
		_ = g.check(w, r)
	})
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
