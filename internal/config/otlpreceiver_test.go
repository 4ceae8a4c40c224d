package config

import (
	"strings"
	"testing"
)

func TestOTLPReceiverDefaultsAndFile(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:0\"}]\n"
	cfg, err := Parse("r.yml", []byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OTLPReceiver
	if !o.IsEnabled() || o.GRPCAddress != "" || o.MaxBodyBytes != DefaultOTLPReceiverMaxBodyBytes || o.Forward || o.BearerToken != "" {
		t.Errorf("defaults %+v", o)
	}
	cfg, err = Parse("r.yml", []byte(base+`otlp_receiver:
  grpc_address: 127.0.0.1:4317
  max_body_bytes: 1MiB
  forward: true
  bearer_token: abc
tracing:
  exporters: [{type: otlp_http, endpoint: "http://127.0.0.1:4318"}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.OTLPReceiver; o.GRPCAddress != "127.0.0.1:4317" || o.MaxBodyBytes != 1<<20 || !o.Forward || o.BearerToken != "abc" {
		t.Errorf("from the file: %+v", o)
	}
}

func TestOTLPReceiverValidation(t *testing.T) {
	base := "listeners: [{name: pub, address: \"127.0.0.1:8080\"}]\n"
	for yaml, want := range map[string]string{
		"otlp_receiver:\n  max_body_bytes: -1\n":           "r.yml:3: otlp_receiver.max_body_bytes: must not be negative",
		"otlp_receiver:\n  max_body_bytes: 2GiB\n":         "r.yml:3: otlp_receiver.max_body_bytes: must be at most 1GiB",
		"otlp_receiver:\n  grpc_address: nope\n":           "r.yml:3: otlp_receiver.grpc_address:",
		"otlp_receiver:\n  grpc_address: 127.0.0.1:8080\n": `otlp_receiver.grpc_address: must not be a public listener's address (listener "pub"`,
		"otlp_receiver:\n  grpc_address: 127.0.0.1:9901\n": "otlp_receiver.grpc_address: must not be the admin listener's address",
		"otlp_receiver:\n  bearer_token: \"a b\"\n":        "r.yml:3: otlp_receiver.bearer_token: must not contain spaces",
		"otlp_receiver:\n  forward: true\n":                "r.yml:3: otlp_receiver.forward: needs an otlp_grpc or otlp_http entry in tracing.exporters",
		"otlp_receiver:\n  grpc_adress: x\n":               "grpc_adress",
	} {
		_, err := Parse("r.yml", []byte(base+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
