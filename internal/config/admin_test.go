package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestAdminValidation(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	const l = "listeners: [{address: \"127.0.0.1:1\"}]\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"public bind without auth", l + "admin:\n  address: \"0.0.0.0:9901\"\n", `f.yml:3: admin.auth: is required when admin.address (0.0.0.0:9901) is not a loopback address`},
		{"all interfaces without auth", l + "admin:\n  address: \":9901\"\n", `admin.auth: is required when admin.address (:9901) is not a loopback address`},
		{"lan bind with empty auth", l + "admin:\n  address: \"10.0.0.5:9901\"\n  auth: {}\n", `admin.auth: is required`},
		{"short token", l + "admin:\n  auth:\n    tokens: [{token: short}]\n", `f.yml:4: admin.auth.tokens[0].token: must be at least 16 characters long, got 5`},
		{"token and file", l + "admin:\n  auth:\n    tokens: [{token: aaaaaaaaaaaaaaaaaaaa, token_file: /x}]\n", `admin.auth.tokens[0]: set token or token_file, not both`},
		{"no token", l + "admin:\n  auth:\n    tokens: [{name: ci}]\n", `admin.auth.tokens[0].token: is required (or token_file)`},
		{"missing file", l + "admin:\n  auth:\n    tokens: [{token_file: " + filepath.Join(dir, "nope") + "}]\n", `admin.auth.tokens[0].token_file: reading `},
		{"bad role", l + "admin:\n  auth:\n    tokens: [{token: aaaaaaaaaaaaaaaaaaaa, role: root}]\n", `admin.auth.tokens[0].role: must be admin or read_only, got "root"`},
		{"user with colon", l + "admin:\n  auth:\n    users: [{username: \"a:b\", password: p}]\n", `admin.auth.users[0].username: must not contain ':'`},
		{"user without password", l + "admin:\n  auth:\n    users: [{username: ops}]\n", `admin.auth.users[0].password: is required (or password_file)`},
		{"empty password file", l + "admin:\n  auth:\n    users: [{username: ops, password_file: " + empty + "}]\n", `admin.auth.users[0].password_file: is empty`},
		{"duplicate names", l + "admin:\n  auth:\n    tokens: [{name: ops, token: aaaaaaaaaaaaaaaaaaaa}]\n    users: [{username: ops, password: p}]\n", `admin.auth.users[0].username: duplicate credential name "ops"`},
		{"allowed host", l + "admin:\n  allowed_hosts: [\"bad host\"]\n", `admin.allowed_hosts[0]: must be a host name or host:port, got "bad host"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	for _, ok := range []string{
		l + "admin:\n  address: \"127.0.0.1:9901\"\n",
		l + "admin:\n  address: \"[::1]:9901\"\n",
		l + "admin:\n  address: \"localhost:9901\"\n",
		l + "admin:\n  address: \"off\"\n",
		l + "admin:\n  address: \"0.0.0.0:9901\"\n  allowed_hosts: [admin.internal, \"admin.example:443\"]\n  auth:\n    users: [{username: ops, password: p}]\n",
	} {
		if _, err := Parse("f.yml", []byte(ok), noEnv); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// A config error about a credential never shows the credential.
func TestAdminErrorsHideValues(t *testing.T) {
	_, err := Parse("f.yml", []byte("listeners: [{address: \"127.0.0.1:1\"}]\nadmin:\n  auth:\n    tokens: [{token: s3cr3t-value, role: nope}]\n"), noEnv)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error: %v", err)
	}
}

func TestSecretNeverShown(t *testing.T) {
	s := Secret("hunter2-hunter2-hunter2")
	tok := AdminToken{Name: "ci", Token: s}
	j, _ := json.Marshal(tok)
	y, _ := yaml.Marshal(tok)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "token", s, "cfg", tok)
	for _, out := range []string{string(j), string(y), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", tok, tok, tok, s, s, s), logged.String()} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret shown: %s", out)
		}
	}
	if s.Value() != "hunter2-hunter2-hunter2" {
		t.Fatal("Value")
	}
}
