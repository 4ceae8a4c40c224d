package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/bench/harness"
	"github.com/vantage-gateway/vantage/bench/reliability"
)

// env holds what one run has built and started.
type env struct {
	tmp, vantage, upstream string
	procs                  []*harness.Proc
	rows                   []reliability.Row
	seq                    int
}

func (e *env) add(r reliability.Row) {
	e.rows = append(e.rows, r)
	fmt.Fprintf(os.Stderr, "   %s: %s = %s (expect %s)\n", r.Scenario, r.Measure, r.Value, r.Expect)
}

func (e *env) stopAll() {
	for _, p := range e.procs {
		p.Stop(5 * time.Second)
	}
	e.procs = nil
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startUpstream starts the bench upstream on addr ("" for a free one).
func (e *env) startUpstream(ctx context.Context, addr string, size int, delay time.Duration) (*harness.Proc, string, error) {
	if addr == "" {
		var err error
		if addr, err = freeAddr(); err != nil {
			return nil, "", err
		}
	}
	e.seq++
	p, err := harness.Start(harness.StartOptions{
		Name:    fmt.Sprintf("upstream-%d", e.seq),
		Argv:    []string{e.upstream, "-addr", addr, "-size", fmt.Sprint(size), "-delay", delay.String()},
		LogPath: filepath.Join(e.tmp, fmt.Sprintf("upstream-%d.log", e.seq)),
		CPU:     -1,
	})
	if err != nil {
		return nil, "", err
	}
	e.procs = append(e.procs, p)
	want := size
	if size > 1<<20 {
		want = -1 // the readiness probe reads at most 1 MiB
	}
	if err := harness.WaitReady(ctx, p, "http://"+addr+"/", want, 10*time.Second); err != nil {
		return nil, "", fmt.Errorf("%w\n%s", err, p.LogTail(10))
	}
	return p, addr, nil
}

// gw is one running gateway.
type gw struct {
	proc          *harness.Proc
	cfgPath       string
	listen, admin string
}

// startVantage writes cfg (with LISTEN and ADMIN replaced by free
// addresses) and runs `vantage run` on it until it answers wantPath.
func (e *env) startVantage(ctx context.Context, cfg, readyPath string) (*gw, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	e.seq++
	g := &gw{listen: listen, admin: admin, cfgPath: filepath.Join(e.tmp, fmt.Sprintf("vantage-%d.yml", e.seq))}
	if err := g.write(cfg); err != nil {
		return nil, err
	}
	p, err := harness.Start(harness.StartOptions{
		Name:    fmt.Sprintf("vantage-%d", e.seq),
		Argv:    []string{e.vantage, "run", "--config", g.cfgPath},
		LogPath: filepath.Join(e.tmp, fmt.Sprintf("vantage-%d.log", e.seq)),
		CPU:     -1,
	})
	if err != nil {
		return nil, err
	}
	g.proc = p
	e.procs = append(e.procs, p)
	if err := harness.WaitReady(ctx, p, "http://"+listen+readyPath, -1, 15*time.Second); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.LogTail(20))
	}
	return g, nil
}

// write renders cfg's LISTEN and ADMIN placeholders and writes it in place,
// so a running gateway sees a change of content.
func (g *gw) write(cfg string) error {
	cfg = strings.NewReplacer("{{LISTEN}}", g.listen, "{{ADMIN}}", g.admin).Replace(cfg)
	tmp := g.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, g.cfgPath)
}

func (g *gw) url(path string) string { return "http://" + g.listen + path }

// adminGet returns the body of GET path on the admin listener.
func (g *gw) adminGet(path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.admin + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return string(b), err
}

// hostAvailable reports whether the upstream addr of service is available
// according to the admin API.
func (g *gw) hostAvailable(service, addr string) (bool, error) {
	body, err := g.adminGet("/api/services")
	if err != nil {
		return false, err
	}
	var svcs []struct {
		Name string `json:"name"`
		Pool struct {
			Hosts []struct {
				Addr      string `json:"addr"`
				Available bool   `json:"available"`
			} `json:"hosts"`
		} `json:"pool"`
	}
	if err := json.Unmarshal([]byte(body), &svcs); err != nil {
		return false, fmt.Errorf("decoding /api/services: %w", err)
	}
	for _, s := range svcs {
		if s.Name != service {
			continue
		}
		for _, h := range s.Pool.Hosts {
			if h.Addr == addr {
				return h.Available, nil
			}
		}
	}
	return false, fmt.Errorf("no host %s in service %s", addr, service)
}

// metricLines counts the lines of /metrics that start with prefix.
func (g *gw) metricLines(prefix string) (int, error) {
	body, err := g.adminGet("/metrics")
	if err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			n++
		}
	}
	return n, sc.Err()
}

func (g *gw) rss() int64 {
	n, _ := reliability.RSS("/proc", g.proc.PID())
	return n
}

// yaml builds a config: one listener, the admin listener, service "app"
// over ups with svcExtra (indented as service keys), route "all" for every
// path with routeExtra (indented as route keys), then extra top-level text.
func yaml(ups []string, svcExtra, routeExtra, rest string) string {
	var b strings.Builder
	b.WriteString("listeners:\n  - name: edge\n    address: \"{{LISTEN}}\"\nadmin:\n  address: \"{{ADMIN}}\"\nservices:\n  - name: app\n    upstreams:\n")
	for _, u := range ups {
		fmt.Fprintf(&b, "      - url: \"http://%s\"\n", u)
	}
	b.WriteString(indent(svcExtra, "    "))
	b.WriteString("routes:\n  - name: all\n    match:\n      path_prefix: /\n    service: app\n")
	b.WriteString(indent(routeExtra, "    "))
	b.WriteString(rest)
	return b.String()
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}

const quiet = "access_log:\n  enabled: false\ntracing:\n  enabled: false\n"
