package demo

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

func fakeUpstreams() map[string][]string {
	ups := map[string][]string{}
	port := 20000
	for _, l := range layout {
		for range l.replicas {
			port++
			ups[l.service] = append(ups[l.service], "http://127.0.0.1:"+strconv.Itoa(port))
		}
	}
	return ups
}

func TestGatewayConfigLoadsAsAUserFile(t *testing.T) {
	data, err := GatewayConfig(ConfigOptions{
		Listen:    "127.0.0.1:8080",
		Admin:     "127.0.0.1:9901",
		Upstreams: fakeUpstreams(),
		AccessLog: `C:\logs\demo "access".log`, // quoting survives odd paths
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("vantage-demo.yml", data, nil)
	if err != nil {
		t.Fatalf("generated config does not load:\n%v\n\n%s", err, data)
	}

	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:8080" || cfg.Admin.Address != "127.0.0.1:9901" {
		t.Errorf("listeners %+v admin %+v", cfg.Listeners, cfg.Admin)
	}
	if cfg.Tracing.ResponseHeader != config.ResponseHeaderTraceresponse {
		t.Errorf("tracing.response_header = %q", cfg.Tracing.ResponseHeader)
	}
	if cfg.AccessLog.Output != config.OutputFile || cfg.AccessLog.File.Path != `C:\logs\demo "access".log` {
		t.Errorf("access_log %+v", cfg.AccessLog)
	}

	if len(cfg.Services) != len(layout) {
		t.Fatalf("%d services, want %d", len(cfg.Services), len(layout))
	}
	for _, s := range cfg.Services {
		if s.HealthCheck == nil || s.HealthCheck.Interval.D() != 2*time.Second || s.HealthCheck.Path != "/healthz" {
			t.Errorf("%s: health check %+v", s.Name, s.HealthCheck)
		}
		if s.OutlierDetection == nil {
			t.Errorf("%s: no outlier detection", s.Name)
		}
	}
	if n := len(cfg.Service(Catalog).Upstreams); n != 2 {
		t.Errorf("catalog has %d upstreams, want 2", n)
	}
	cb := cfg.Service(Payments).CircuitBreaker
	if cb == nil || cb.Fallback != PaymentsQueue || cb.SlowCallDuration.D() != 500*time.Millisecond {
		t.Errorf("payments breaker %+v", cb)
	}

	routes := map[string]*config.Route{}
	for i := range cfg.Routes {
		routes[cfg.Routes[i].Name] = &cfg.Routes[i]
	}
	tests := []struct {
		route, path, service, strip string
		methods                     string
		retryOn                     string
	}{
		{"home", "/", Storefront, "", "GET,HEAD", "connect_error,503"},
		{"product-page", "/products/{id}", Storefront, "", "GET,HEAD", "connect_error,503"},
		{"catalog-api", "/api/catalog/{rest...}", "", "/api/catalog", "", "connect_error,503"},
		{"create-order", "/api/orders", Orders, "/api", "POST", "connect_error"},
		{"order-status", "/api/orders/{id}", Orders, "/api", "GET,HEAD", "connect_error,503"},
		{"payments-internal", "/internal/payments/{rest...}", Payments, "/internal/payments", "POST", ""},
	}
	if len(cfg.Routes) != len(tests) {
		t.Errorf("%d routes, want %d", len(cfg.Routes), len(tests))
	}
	for _, tt := range tests {
		r := routes[tt.route]
		if r == nil {
			t.Errorf("route %s missing", tt.route)
			continue
		}
		retryOn := ""
		if r.Retry != nil {
			retryOn = strings.Join(r.Retry.On, ",")
		}
		if r.Match.Path != tt.path || r.Service != tt.service || r.StripPrefix != tt.strip ||
			strings.Join(r.Match.Methods, ",") != tt.methods || retryOn != tt.retryOn {
			t.Errorf("route %s: path %q service %q strip %q methods %v retry %q", tt.route, r.Match.Path, r.Service, r.StripPrefix, r.Match.Methods, retryOn)
		}
	}
	split := routes["catalog-api"].Split
	if split == nil || len(split.Services) != 2 || split.Services[0] != (config.SplitService{Service: Catalog, Weight: 90}) ||
		split.Services[1] != (config.SplitService{Service: CatalogV2, Weight: 10}) || split.Override == nil {
		t.Errorf("catalog split %+v", split)
	}
	rl := routes["create-order"].RateLimit
	if rl == nil || rl.Rate != 2 || rl.Burst != 4 || !rl.Key.ClientIP {
		t.Errorf("create-order rate limit %+v", rl)
	}
}

func TestGatewayConfigVariants(t *testing.T) {
	data, err := GatewayConfig(ConfigOptions{Listen: "127.0.0.1:0", Admin: "off", Upstreams: fakeUpstreams(), NoCanary: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("demo.yml", data, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for _, r := range cfg.Routes {
		if r.Name == "catalog-api" && (r.Split != nil || r.Service != Catalog) {
			t.Errorf("NoCanary: catalog-api split %+v service %q", r.Split, r.Service)
		}
	}
	if cfg.Admin.Address != "off" || strings.Contains(string(data), "access_log:") {
		t.Errorf("admin %q; access_log section present: %v", cfg.Admin.Address, strings.Contains(string(data), "access_log:"))
	}
}

func TestGatewayConfigErrors(t *testing.T) {
	ups := fakeUpstreams()
	delete(ups, PaymentsQueue)
	tests := []struct {
		name string
		o    ConfigOptions
		want string
	}{
		{"no listen", ConfigOptions{Admin: "127.0.0.1:9901", Upstreams: fakeUpstreams()}, "listen"},
		{"no admin", ConfigOptions{Listen: "127.0.0.1:8080", Upstreams: fakeUpstreams()}, "admin"},
		{"missing service", ConfigOptions{Listen: "127.0.0.1:8080", Admin: "127.0.0.1:9901", Upstreams: ups}, `"payments-queue"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := GatewayConfig(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %s", err, tt.want)
			}
		})
	}
}

func TestGatewayConfigRollout(t *testing.T) {
	data, err := GatewayConfig(ConfigOptions{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Upstreams: fakeUpstreams(), Rollout: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("demo.yml", data, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(cfg.Rollouts) != 1 || cfg.Rollouts[0].Route != "catalog-api" || cfg.Rollouts[0].Canary != CatalogV2 {
		t.Fatalf("rollouts %+v", cfg.Rollouts)
	}
	for _, r := range cfg.Routes {
		if r.Name == "catalog-api" && (r.Split == nil || r.Split.Services[1].Weight != 0) {
			t.Fatalf("the rollout's split must start at 100/0: %+v", r.Split)
		}
	}
}
