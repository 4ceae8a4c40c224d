package config

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func noEnv(string) (string, bool) { return "", false }

func TestLoadGood(t *testing.T) {
	cfg, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.Routes[0].Timeout.D(); got != 10*time.Second {
		t.Errorf("route timeout = %v, want 10s from the ${...:-default}", got)
	}
	if got := cfg.Services[0].HealthCheck.HealthyThreshold; got != 2 {
		t.Errorf("healthy_threshold default = %d, want 2", got)
	}
	if cfg.Admin.Address != "127.0.0.1:19901" {
		t.Errorf("admin address = %q", cfg.Admin.Address)
	}
}

func TestBadConfigListsEveryErrorWithLineAndPath(t *testing.T) {
	_, err := Load("testdata/bad.yml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %T %v", err, err)
	}
	want := []string{
		"testdata/bad.yml:7: services[0].upstreams[0].url: scheme must be http, https or h2c",
		"testdata/bad.yml:8: services[0].upstreams[0].weight: must be >= 0, got -1",
		"testdata/bad.yml:12: routes[0].match.path: template segment \"{id\"",
		"testdata/bad.yml:13: routes[0].service: unknown service \"nope\"",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
}

func TestStrictDecode(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listeners:\n  - address: \":1\"\n    adress: x\n", `:3: listeners[0].adress: unknown field "adress"`},
		{"wrong type", "listeners:\n  - address: \":1\"\n    max_header_bytes: lots\n", `:3: listeners[0].max_header_bytes: cannot use str "lots" as int`},
		{"bad duration", "shutdown_grace: 5 parsecs\nlisteners:\n  - address: \":1\"\n", `invalid duration "5 parsecs"`},
		{"unset env", "listeners:\n  - address: ${NOPE_ADDR}\n", `f.yml:2: listeners[0].address: environment variable NOPE_ADDR is not set`},
		{"no listeners", "services: []\n", `listeners: at least one listener is required`},
		{"admin on public address", "listeners:\n  - address: \"127.0.0.1:80\"\nadmin:\n  address: \"127.0.0.1:80\"\n", `f.yml:4: admin.address: must not be a public listener's address`},
		{"hash without key", "listeners:\n  - address: \":1\"\nservices:\n  - name: s\n    upstreams: [{url: \"http://a:1\"}]\n    load_balancing: {policy: hash}\n", `services[0].load_balancing.hash: is required with policy hash`},
		{"timeout >= interval", "listeners:\n  - address: \":1\"\nservices:\n  - name: s\n    upstreams: [{url: \"http://a:1\"}]\n    health_check: {interval: 1s, timeout: 2s}\n", `services[0].health_check.timeout: must be less than interval`},
		{"both path kinds", "listeners:\n  - address: \":1\"\nroutes:\n  - name: r\n    match: {path: /a, path_prefix: /b}\n    service: s\n", `routes[0].match: set path or path_prefix, not both`},
		{"split without weight", "listeners:\n  - address: \":1\"\nservices:\n  - name: s\n    upstreams: [{url: \"http://a:1\"}]\nroutes:\n  - name: r\n    split: {services: [{service: s, weight: 0}]}\n", `routes[0].split.services: at least one service needs a positive weight`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(tc.yaml), noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEnvSubstitution(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "PORT" {
			return "18081", true
		}
		return "", false
	}
	cfg, err := Parse("f.yml", []byte("listeners:\n  - address: \"127.0.0.1:${PORT}\"\n    name: \"$${literal}\"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners[0].Address != "127.0.0.1:18081" || cfg.Listeners[0].Name != "${literal}" {
		t.Fatalf("got %+v", cfg.Listeners[0])
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("listeners:\n  - address: \":1\"\n"))
	f.Add([]byte("routes: [{name: a, match: {path: \"/x/{id}\"}, service: s}]\n"))
	f.Add([]byte("a: ${B:-c}\n$${"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yml", data, noEnv) // must not panic
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
		}
	})
}

func TestEnvInCommentsIsLeftAlone(t *testing.T) {
	cfg, err := Parse("f.yml", []byte("listeners:\n  - address: \"127.0.0.1:1\" # like ${PORT}\n    name: \"a#${N:-b}\" # ${X}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners[0].Name != "a#b" {
		t.Fatalf("name %q", cfg.Listeners[0].Name)
	}
}

// TestEveryErrorReported is a golden test: a file with unknown fields, bad
// durations, a wrong type and validation errors gets every one of them,
// each with file, line and field path, in one run. Decoding used to stop at
// the first bad duration (so the unknown field after it was never seen), and
// validation was skipped whenever decoding had failed.
func TestEveryErrorReported(t *testing.T) {
	_, err := Load("testdata/bad_mixed.yml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %T %v", err, err)
	}
	for _, e := range errs {
		if e.File == "" || e.Line == 0 || e.Path == "" {
			t.Errorf("error without file, line or path: %q", e.Error())
		}
	}
	got := err.Error() + "\n"
	golden := "testdata/bad_mixed.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("errors differ from %s (run with -update to accept):\ngot:\n%swant:\n%s", golden, got, want)
	}
}

// TestDecodeErrorHidesValidationOfSameField: a value that failed to decode
// is not reported a second time by validation (as "is required" or the
// like).
func TestDecodeErrorHidesValidationOfSameField(t *testing.T) {
	_, err := Parse("f.yml", []byte("listeners: lots\nshutdown_grace: -1s\n"), noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, `f.yml:1: listeners: cannot use str "lots"`) || !strings.Contains(msg, "f.yml:2: shutdown_grace: must not be negative") {
		t.Errorf("missing errors in:\n%s", msg)
	}
	if strings.Contains(msg, "at least one listener is required") {
		t.Errorf("validation repeated the decode error of listeners:\n%s", msg)
	}
}
