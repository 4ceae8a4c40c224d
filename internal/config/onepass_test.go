package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// parseTwoPass is Parse as it was before the one-pass decode: the YAML is
// always parsed into nodes for the line index, then decoded. It stays in
// the tests as the oracle of Parse's results.
func parseTwoPass(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg, lines, decodeErrs := decode(file, data, lookup)
	if cfg == nil {
		return nil, decodeErrs
	}
	cfg.ApplyEnv(lookup)
	cfg.SetDefaults()
	if err := cfg.validate(lines); err != nil || len(decodeErrs) > 0 {
		var verrs Errors
		errors.As(err, &verrs)
		return nil, mergeErrors(decodeErrs, verrs)
	}
	return cfg, nil
}

// sameParse fails t unless Parse and the two-pass oracle agree on data.
func sameParse(t *testing.T, data []byte, lookup func(string) (string, bool)) {
	t.Helper()
	got, gotErr := Parse("f.yml", data, lookup)
	want, wantErr := parseTwoPass("f.yml", data, lookup)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Parse error %v, two-pass error %v\n%s", gotErr, wantErr, data)
	}
	if gotErr != nil {
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("errors differ:\none pass:\n%v\ntwo passes:\n%v\ninput:\n%s", gotErr, wantErr, data)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("configs differ for\n%s", data)
	}
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestParseOnePassMatchesTwoPass: decoding once (and locating errors only
// when there are some) gives the same configs and the same located errors
// as always building the line index first.
func TestParseOnePassMatchesTwoPass(t *testing.T) {
	env := envOf(map[string]string{"PORT": "18081", "UP": "http://127.0.0.1:9"})
	inputs := []string{
		string(estateYAML(30)),
		strings.Replace(string(estateYAML(30)), "service: svc7}", "service: nope}", 1),
		strings.Replace(string(estateYAML(30)), "path: \"/svc3/items/{id}\"", "path: \"/svc3/items/{id\"", 1),
		strings.Replace(string(estateYAML(30)), "9000", "${PORT}", 3),
		strings.Replace(string(estateYAML(30)), "9000", "${NOPE}", 1),
		strings.Replace(string(estateYAML(30)), "{name: svc4,", "{name: svc4, bogus: 1,", 1),
		"listeners:\n  - address: \"127.0.0.1:${PORT}\"\n    name: a\nadmin: {address: \"0.0.0.0:9901\"}\n",
		"services: [{name: a, upstreams: [{url: \"${UP}\"}]}]\n",
		"# only a comment\n",
		"",
		"listeners: [",
	}
	for _, f := range []string{"testdata/good.yml", "testdata/bad.yml", "testdata/bad_mixed.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		sameParse(t, []byte(in), env)
	}
}

func FuzzParseOnePass(f *testing.F) {
	f.Add(estateYAML(3))
	f.Add([]byte("listeners: [{name: p, address: \"127.0.0.1:1\"}]\nservices: [{name: s, upstreams: [{url: \"http://a:1\"}]}]\nroutes: [{name: r, match: {path: /x}, service: t}]\n"))
	f.Add([]byte("admin: {address: \"0.0.0.0:9\"}\nlisteners: [{name: p, address: \"${A:-127.0.0.1:1}\"}]\n"))
	for _, file := range []string{"testdata/good.yml", "testdata/bad.yml", "testdata/bad_mixed.yml"} {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	env := envOf(map[string]string{"A": "127.0.0.1:2", "UP": "http://127.0.0.1:9"})
	f.Fuzz(func(t *testing.T, data []byte) {
		sameParse(t, data, env)
	})
}
