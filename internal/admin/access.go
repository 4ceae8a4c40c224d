package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

// Role is what an authenticated client may do.
type Role uint8

const (
	// RoleReadOnly may use the safe methods (GET, HEAD, OPTIONS) only.
	RoleReadOnly Role = iota + 1
	// RoleAdmin may do everything.
	RoleAdmin
)

// Credential is one bearer token (Token set) or basic-auth user (Username
// and Password set).
type Credential struct {
	// Name names the credential in log lines; never its value.
	Name               string
	Role               Role
	Token              string
	Username, Password string
}

// Access is who may use the admin listener and what they may do. The zero
// value allows only the loopback names in Host and asks for no
// credentials.
type Access struct {
	// Hosts are further names allowed in the Host header: "name" matches
	// with the listener's port or without a port, "name:port" exactly.
	Hosts []string
	// Credentials, when any, are required of every request; none means no
	// authentication (config validation allows that on loopback only).
	Credentials []Credential
}

// AccessFromConfig builds the Access of a (validated) admin section,
// reading token and password files. Errors name the field, never a value.
func AccessFromConfig(a config.Admin) (Access, error) {
	acc := Access{Hosts: append([]string(nil), a.AllowedHosts...)}
	if a.Auth == nil {
		return acc, nil
	}
	role := func(r string) Role {
		if r == config.RoleReadOnly {
			return RoleReadOnly
		}
		return RoleAdmin
	}
	for i := range a.Auth.Tokens {
		t := &a.Auth.Tokens[i]
		v, err := t.Resolve()
		if err != nil {
			return Access{}, fmt.Errorf("admin.auth.tokens[%d]: %w", i, err)
		}
		name := t.Name
		if name == "" {
			name = "token[" + strconv.Itoa(i) + "]"
		}
		acc.Credentials = append(acc.Credentials, Credential{Name: name, Role: role(t.Role), Token: v})
	}
	for i := range a.Auth.Users {
		u := &a.Auth.Users[i]
		v, err := u.Resolve()
		if err != nil {
			return Access{}, fmt.Errorf("admin.auth.users[%d]: %w", i, err)
		}
		acc.Credentials = append(acc.Credentials, Credential{Name: u.Username, Role: role(u.Role), Username: u.Username, Password: v})
	}
	return acc, nil
}

// realm is the protection space of WWW-Authenticate.
const realm = `realm="vantage admin"`

// Statuses of refused requests. A Host that does not name the admin
// listener gets 421 Misdirected Request: the request reached a server that
// does not answer for that authority (DNS rebinding, a stray proxy).
const (
	StatusWrongHost = http.StatusMisdirectedRequest
)

// guard enforces Access around the whole admin mux, so every handler
// mounted on it (API, metrics, pprof, receivers, the dashboard) is
// covered. Safe for concurrent use.
type guard struct {
	access   Access
	tokens   []hashedCredential
	users    []hashedCredential
	hasBasic bool
	// addr is the bound listener address (host, port), set once
	// listening; before that only the loopback names are allowed, on any
	// port.
	addr atomic.Pointer[boundAddr]
	log  *deniedLog
}

type hashedCredential struct {
	name       string
	role       Role
	user, pass [sha256.Size]byte // token: pass only
}

type boundAddr struct {
	ip          netip.Addr // invalid for a name
	unspecified bool       // 0.0.0.0 or ::
	port        string
}

func newGuard(a Access, log *slog.Logger, clk clock.Clock) *guard {
	g := &guard{access: a, log: newDeniedLog(log, clk)}
	for _, c := range a.Credentials {
		h := hashedCredential{name: c.Name, role: c.Role}
		if h.role == 0 {
			h.role = RoleAdmin
		}
		if c.Token != "" {
			h.pass = sha256.Sum256([]byte(c.Token))
			g.tokens = append(g.tokens, h)
			continue
		}
		h.user, h.pass = sha256.Sum256([]byte(c.Username)), sha256.Sum256([]byte(c.Password))
		g.users = append(g.users, h)
	}
	g.hasBasic = len(g.users) > 0
	return g
}

// setAddr records the listener's bound address.
func (g *guard) setAddr(addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	b := &boundAddr{port: port}
	if ip, err := netip.ParseAddr(host); err == nil {
		b.ip = ip.Unmap()
		b.unspecified = ip.IsUnspecified()
	} else if host == "" {
		b.unspecified = true
	}
	g.addr.Store(b)
}

// check answers the request itself and returns false when it is refused.
func (g *guard) check(w http.ResponseWriter, r *http.Request) bool {
	if !g.hostAllowed(r.Host) {
		g.log.denied(r, "host", "")
		refuse(w, StatusWrongHost, "misdirected request: the Host header does not name this admin listener (see admin.allowed_hosts)")
		return false
	}
	unsafe := !safeMethod(r.Method)
	if unsafe && !sameOrigin(r) {
		g.log.denied(r, "cross_origin", "")
		refuse(w, http.StatusForbidden, "forbidden: cross-origin requests may not change anything")
		return false
	}
	if len(g.access.Credentials) == 0 {
		return true
	}
	role, name, ok := g.authenticate(r)
	if !ok {
		g.log.denied(r, "unauthenticated", "")
		w.Header().Add("WWW-Authenticate", "Bearer "+realm)
		if g.hasBasic {
			w.Header().Add("WWW-Authenticate", "Basic "+realm+`, charset="UTF-8"`)
		}
		refuse(w, http.StatusUnauthorized, "unauthorized: a bearer token or basic-auth credentials are required")
		return false
	}
	if unsafe && role != RoleAdmin {
		g.log.denied(r, "read_only", name)
		refuse(w, http.StatusForbidden, "forbidden: this credential is read-only")
		return false
	}
	return true
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// hostAllowed reports whether host (the request's Host) names the admin
// listener: its own address, a loopback name, or a configured name, with
// the listener's port (a name without a port stands for port 80, as a
// browser sends it, except configured names, which may omit it).
func (g *guard) hostAllowed(host string) bool {
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		name = host[1 : len(host)-1]
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		return false
	}
	b := g.addr.Load()
	portOK := func() bool {
		if b == nil {
			return true
		}
		if port == "" {
			return b.port == "80"
		}
		return port == b.port
	}
	for _, h := range g.access.Hosts {
		hn, hp := h, ""
		if x, y, err := net.SplitHostPort(h); err == nil {
			hn, hp = x, y
		}
		if !strings.EqualFold(strings.TrimSuffix(hn, "."), name) {
			continue
		}
		if hp != "" && hp == port || hp == "" && (port == "" || b == nil || port == b.port) {
			return true
		}
	}
	if !portOK() {
		return false
	}
	if name == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	// An address literal cannot be rebound by DNS: on a wildcard bind any
	// of the machine's addresses may be used, else the bound one.
	return b != nil && (b.unspecified || ip == b.ip)
}

// sameOrigin reports whether a state-changing request may come from where
// it says it comes from: no Origin or one naming the admin listener's own
// host (the Host the check above accepted; http or https, since a TLS
// proxy may stand in front), and no Sec-Fetch-Site other than same-origin
// or none (a request the user made directly). Clients that are not
// browsers (curl, services posting OTLP) send neither header and pass.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return true
	}
	if len(origins) > 1 {
		return false
	}
	o := origins[0]
	for _, scheme := range []string{"http://", "https://"} {
		if len(o) > len(scheme) && strings.EqualFold(o[:len(scheme)], scheme) {
			return strings.EqualFold(o[len(scheme):], r.Host)
		}
	}
	return false
}

// authenticate checks the Authorization header against every credential
// in constant time (per credential: hashes of equal length are compared,
// and every credential of the kind is compared).
func (g *guard) authenticate(r *http.Request) (Role, string, bool) {
	auth := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(auth, " ")
	rest = strings.TrimSpace(rest)
	var found *hashedCredential
	switch {
	case strings.EqualFold(scheme, "Bearer") && rest != "":
		sum := sha256.Sum256([]byte(rest))
		for i := range g.tokens {
			if subtle.ConstantTimeCompare(sum[:], g.tokens[i].pass[:]) == 1 && found == nil {
				found = &g.tokens[i]
			}
		}
	case strings.EqualFold(scheme, "Basic") && rest != "":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return 0, "", false
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return 0, "", false
		}
		us, ps := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		for i := range g.users {
			u := subtle.ConstantTimeCompare(us[:], g.users[i].user[:])
			p := subtle.ConstantTimeCompare(ps[:], g.users[i].pass[:])
			if u&p == 1 && found == nil {
				found = &g.users[i]
			}
		}
	}
	if found == nil {
		return 0, "", false
	}
	return found.role, found.name, true
}

// deniedLog logs refused requests at warn, at most deniedBurst lines per
// deniedWindow; the lines it skips are counted in the next one. It logs
// the method, the path (never the query), the peer, the reason and, for a
// read-only credential, its name: never a header value.
type deniedLog struct {
	log   *slog.Logger
	clock clock.Clock

	mu         sync.Mutex
	windowEnd  time.Time
	n          int
	suppressed int
}

const (
	deniedBurst  = 10
	deniedWindow = 10 * time.Second
)

func newDeniedLog(log *slog.Logger, clk clock.Clock) *deniedLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &deniedLog{log: log, clock: clk}
}

func (d *deniedLog) denied(r *http.Request, reason, credential string) {
	now := d.clock.Now()
	d.mu.Lock()
	if now.After(d.windowEnd) {
		d.windowEnd, d.n = now.Add(deniedWindow), 0
	}
	if d.n >= deniedBurst {
		d.suppressed++
		d.mu.Unlock()
		return
	}
	d.n++
	suppressed := d.suppressed
	d.suppressed = 0
	d.mu.Unlock()

	attrs := []any{"reason", reason, "method", r.Method, "path", r.URL.Path, "peer", r.RemoteAddr}
	if credential != "" {
		attrs = append(attrs, "credential", credential)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	d.log.Warn("admin request refused", attrs...)
}
