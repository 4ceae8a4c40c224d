package harness

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

func TestRender(t *testing.T) {
	vars := map[string]string{"LISTEN": "127.0.0.1:1", "UPSTREAM": "127.0.0.1:2", "UNUSED": "x"}
	tests := []struct {
		name, tmpl, want, wantErr string
	}{
		{"replaces all", "a {{LISTEN}} b {{UPSTREAM}} c {{LISTEN}}", "a 127.0.0.1:1 b 127.0.0.1:2 c 127.0.0.1:1", ""},
		{"no placeholders", "plain text", "plain text", ""},
		{"lower case is not a placeholder", "{{listen}} {{ LISTEN }}", "{{listen}} {{ LISTEN }}", ""},
		{"undefined, named once and sorted", "{{ZED}} {{ADMIN}} {{ZED}}", "", "undefined placeholders: ADMIN, ZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.tmpl, vars)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Render error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Render = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestVantageTemplates renders every bench/configs/*.yml as the harness
// does and checks that Vantage accepts the result.
func TestVantageTemplates(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no templates in bench/configs")
	}
	hasPlain := false
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yml")
		hasPlain = hasPlain || name == "plain"
		t.Run(name, func(t *testing.T) {
			tmpl, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			vars := EstateVars(3, "127.0.0.1:18082")
			maps.Copy(vars, map[string]string{
				"LISTEN":   "127.0.0.1:18080",
				"ADMIN":    "127.0.0.1:18081",
				"UPSTREAM": "127.0.0.1:18082",
				"LOGFILE":  filepath.Join(t.TempDir(), "access.log"),
			})
			out, err := Render(string(tmpl), vars)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(f, []byte(out), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("Vantage rejects the rendered %s:\n%v", filepath.Base(f), err)
			}
			if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:18080" {
				t.Errorf("listeners = %+v, want one on 127.0.0.1:18080", cfg.Listeners)
			}
		})
	}
	if !hasPlain {
		t.Error("bench/configs/plain.yml is missing; it is the default variant")
	}
}

// TestProxyConfigs renders the nginx, haproxy and Caddy configs and, when
// the server is installed, asks it to check the config without starting.
func TestProxyConfigs(t *testing.T) {
	tests := []struct {
		name   string
		render func(ProxyVars) (string, error)
		file   string
		check  func(dir, file string) []string
		want   []string
	}{
		{"nginx", NginxConfig, "nginx.conf",
			func(dir, file string) []string {
				return []string{"nginx", "-t", "-q", "-p", dir + "/", "-e", filepath.Join(dir, "error.log"), "-c", file}
			},
			[]string{"listen 127.0.0.1:18080;", "server 127.0.0.1:18082;", "keepalive 64;", "proxy_http_version 1.1;",
				`proxy_set_header Connection "";`, "worker_processes 1;", "access_log off;"}},
		{"haproxy", HAProxyConfig, "haproxy.cfg",
			func(dir, file string) []string { return []string{"haproxy", "-c", "-q", "-f", file} },
			[]string{"bind 127.0.0.1:18080", "server up1 127.0.0.1:18082", "http-reuse always", "nbthread 1", "mode http"}},
		{"caddy", Caddyfile, "Caddyfile",
			func(dir, file string) []string {
				return []string{"caddy", "validate", "--adapter", "caddyfile", "--config", file}
			},
			[]string{"http://127.0.0.1:18080 {", "bind 127.0.0.1\n", "reverse_proxy 127.0.0.1:18082", "admin off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out, err := tt.render(ProxyVars{Listen: "127.0.0.1:18080", Upstream: "127.0.0.1:18082", Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("config lacks %q:\n%s", w, out)
				}
			}
			file := filepath.Join(dir, tt.file)
			if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			argv := tt.check(dir, file)
			exe, err := exec.LookPath(argv[0])
			if err != nil {
				if exe, err = exec.LookPath("/usr/sbin/" + argv[0]); err != nil {
					t.Skipf("%s not installed; config text checked only", argv[0])
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, argv[1:]...)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s rejects the config: %v\n%s\n%s", argv[0], err, b, out)
			}
		})
	}
}

// TestPlainbIsPlain checks that the A/A variant is plain.yml apart from
// comments, so that pairing them measures a difference of nothing.
func TestPlainbIsPlain(t *testing.T) {
	body := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "configs", name))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	if body("plainb.yml") != body("plain.yml") {
		t.Error("bench/configs/plainb.yml differs from plain.yml beyond comments")
	}
}

// TestEstate renders the estate templates with 50 routes and checks that
// Vantage reads 50 template routes (plus the catch-all) and, for estate,
// 50 services of their own, and that the wrk script draws from 0..49.
func TestEstate(t *testing.T) {
	for _, name := range []string{"estate", "estateshared"} {
		t.Run(name, func(t *testing.T) {
			tmpl, err := os.ReadFile(filepath.Join("..", "configs", name+".yml"))
			if err != nil {
				t.Fatal(err)
			}
			vars := EstateVars(50, "127.0.0.1:18082")
			maps.Copy(vars, map[string]string{"LISTEN": "127.0.0.1:18080", "ADMIN": "127.0.0.1:18081", "UPSTREAM": "127.0.0.1:18082"})
			out, err := Render(string(tmpl), vars)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(name+".yml", []byte(out), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Routes) != 51 {
				t.Fatalf("%d routes, want 51", len(cfg.Routes))
			}
			for i, r := range cfg.Routes[:50] {
				wantSvc := fmt.Sprintf("svc%d", i)
				if name == "estateshared" {
					wantSvc = "upstream"
				}
				if r.Name != fmt.Sprintf("svc%d", i) || r.Match.Path != fmt.Sprintf("/svc%d/items/{id}", i) || r.Service != wantSvc {
					t.Fatalf("routes[%d] = %s %q -> %s", i, r.Name, r.Match.Path, r.Service)
				}
			}
			wantServices := 1
			if name == "estate" {
				wantServices = 51
			}
			if len(cfg.Services) != wantServices {
				t.Fatalf("%d services, want %d", len(cfg.Services), wantServices)
			}
		})
	}
	v := ProxyVars{Listen: "127.0.0.1:18080", Upstream: "127.0.0.1:18082", Dir: t.TempDir(), Estate: 50}
	conf, err := NginxConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(conf, "location /svc"); n != 50 || !strings.Contains(conf, "location /svc49/items/ {") {
		t.Fatalf("nginx config has %d estate locations, want 50 up to /svc49/items/:\n%s", n, conf)
	}
	if n := strings.Count(conf, "proxy_pass http://backend;"); n != 51 {
		t.Fatalf("nginx config has %d proxy_pass lines, want 51", n)
	}
	script := EstateScript(50)
	if !strings.Contains(script, "local n = 50\n") || !strings.Contains(script, "math.random(0, n - 1)") {
		t.Fatalf("script does not draw from 0..49:\n%s", script)
	}
}
