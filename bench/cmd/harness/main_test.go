package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(options) bool
		wantErr string
	}{
		{"defaults", nil, func(o options) bool {
			return o.rounds == 5 && o.duration == 10*time.Second && o.warmup == 2*time.Second && o.conns == 16 &&
				strings.Join(o.targets, ",") == "direct,vantage,httputil,nginx,haproxy,caddy" &&
				strings.Join(o.variants, ",") == "plain"
		}, ""},
		{"quick", []string{"-quick", "-targets", "vantage, httputil,vantage"}, func(o options) bool {
			return o.rounds == 1 && o.duration == 3*time.Second && o.warmup == time.Second &&
				strings.Join(o.targets, ",") == "vantage,httputil"
		}, ""},
		{"quick keeps explicit values", []string{"-quick", "-rounds", "2", "-duration", "5s"}, func(o options) bool {
			return o.rounds == 2 && o.duration == 5*time.Second && o.warmup == time.Second
		}, ""},
		{"variants", []string{"-vantage", "plain,full"}, func(o options) bool {
			return strings.Join(o.variants, ",") == "plain,full"
		}, ""},
		{"baseline variant", []string{"-targets", "vantage,nginx", "-vantage", "plain,metrics", "-baseline", "vantage/plain"}, func(o options) bool {
			return o.baseline == "vantage/plain"
		}, ""},
		{"baseline target", []string{"-targets", "vantage,nginx", "-baseline", "nginx"}, func(o options) bool { return o.baseline == "nginx" }, ""},
		{"baseline not measured", []string{"-targets", "vantage", "-vantage", "plain", "-baseline", "vantage/metrics"}, nil, `-baseline "vantage/metrics" is not one of the targets`},
		{"estate sizes", []string{"-vantage", "estate", "-estate", "10,10000", "-baseline", "vantage/estate@10"}, func(o options) bool {
			return fmt.Sprint(o.estate) == "[10 10000]" && o.baseline == "vantage/estate@10"
		}, ""},
		{"estate default", nil, func(o options) bool { return fmt.Sprint(o.estate) == "[10]" && !o.estateSet }, ""},
		{"nginx estate baseline", []string{"-targets", "vantage,nginx", "-vantage", "estate", "-estate", "10,100", "-baseline", "nginx@10"}, func(o options) bool {
			return o.estateSet && o.baseline == "nginx@10"
		}, ""},
		{"nginx estate baseline without -estate", []string{"-targets", "nginx", "-baseline", "nginx@10"}, nil, `-baseline "nginx@10" is not one of the targets`},
		{"estate size not measured", []string{"-vantage", "estate", "-estate", "10", "-baseline", "vantage/estate@100"}, nil, `-baseline "vantage/estate@100" is not one of the targets`},
		{"bad estate", []string{"-estate", "10,ten,0"}, nil, `-estate: "ten" must be a route count`},
		{"unknown target", []string{"-targets", "envoy"}, nil, `unknown target "envoy"`},
		{"fractional duration", []string{"-duration", "1500ms"}, nil, "-duration must be whole seconds"},
		{"think time", []string{"-think", "2ms"}, func(o options) bool { return o.think == 2*time.Millisecond }, ""},
		{"fractional think time", []string{"-think", "1500us"}, nil, "-think (1.5ms) must be whole milliseconds"},
		{"fill", []string{"-fill", "20s"}, func(o options) bool { return o.fill == 20*time.Second }, ""},
		{"fractional fill", []string{"-fill", "2500ms"}, nil, "-fill must be whole seconds"},
		{"zero rounds", []string{"-rounds", "0"}, nil, "-rounds must be 1..100"},
		{"path as variant", []string{"-vantage", "../x"}, nil, "must be a plain name"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Errorf("options = %+v", o)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"/tmp/go-build123/b001/exe/harness", "-quick"}, "go run ./bench/cmd/harness -quick"},
		{[]string{"/usr/local/bin/harness", "-out", "a b.md"}, "harness -out 'a b.md'"},
	}
	for _, tt := range tests {
		if got := commandLine(tt.args); got != tt.want {
			t.Errorf("commandLine(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestWrkScriptThinkTime(t *testing.T) {
	dir := t.TempDir()
	own := dir + "/estate.lua"
	if err := os.WriteFile(own, []byte("request = function() return wrk.format(nil, \"/r1\") end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &runner{tmp: dir}
	if got, err := r.wrkScript(target{name: "vantage/estate@10", script: own}); err != nil || got != own {
		t.Fatalf("no think time: script %q, %v; want the target's own", got, err)
	}
	r.opts.think = 3 * time.Millisecond
	for _, tg := range []target{{name: "vantage/plain"}, {name: "vantage/estate@10", script: own}} {
		got, err := r.wrkScript(tg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(got)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "function delay() return 3 end") {
			t.Errorf("%s: script %q has no 3 ms delay()", tg.name, b)
		}
		if tg.script != "" && !strings.Contains(string(b), "wrk.format(nil, \"/r1\")") {
			t.Errorf("%s: script %q lost the target's own request()", tg.name, b)
		}
	}
}
