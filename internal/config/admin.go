package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Admin roles for AdminToken.Role and AdminUser.Role.
const (
	// RoleAdmin may do everything the admin API offers (default).
	RoleAdmin = "admin"
	// RoleReadOnly may read everything (GET and HEAD) and change nothing.
	RoleReadOnly = "read_only"
)

// MinAdminTokenLen is the shortest bearer token accepted.
const MinAdminTokenLen = 16

// AdminAuth holds the admin API's credentials: bearer tokens, basic-auth
// users, or both. Read at start; a reload does not change them.
type AdminAuth struct {
	// Tokens are bearer tokens (Authorization: Bearer <token>).
	Tokens []AdminToken `yaml:"tokens,omitempty" json:"tokens,omitempty"`
	// Users are basic-auth users (Authorization: Basic ...), which a
	// browser can prompt for.
	Users []AdminUser `yaml:"users,omitempty" json:"users,omitempty"`
}

// AdminToken is one bearer token.
type AdminToken struct {
	// Name names the credential in the gateway's log (never its value).
	// Default "token[<index>]".
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Role is admin (default) or read_only.
	Role string `yaml:"role,omitempty" json:"role,omitempty"`
	// Token is the token itself, at least 16 characters; usually
	// "${ENV_VAR}". Exactly one of Token and TokenFile is required.
	Token Secret `yaml:"token,omitempty" json:"token,omitempty"`
	// TokenFile is a file holding the token (a trailing line break is
	// ignored), read at start.
	TokenFile string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
}

// AdminUser is one basic-auth user.
type AdminUser struct {
	// Username is required, unique, and has no ':'. It names the
	// credential in the gateway's log.
	Username string `yaml:"username" json:"username"`
	// Role is admin (default) or read_only.
	Role string `yaml:"role,omitempty" json:"role,omitempty"`
	// Password is the password; usually "${ENV_VAR}". Exactly one of
	// Password and PasswordFile is required.
	Password Secret `yaml:"password,omitempty" json:"password,omitempty"`
	// PasswordFile is a file holding the password (a trailing line break
	// is ignored), read at start.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
}

// Secret is a credential read from the config. It never shows its value
// when formatted, marshalled or logged: String, GoString, MarshalJSON,
// MarshalYAML and LogValue all give "[redacted]" (or "" when empty).
// Value returns the value itself.
type Secret string

const secretMark = "[redacted]"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return secretMark
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.shown() }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.shown()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", s.shown())), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.shown(), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// Resolve returns the token: Token, or the content of TokenFile.
func (t *AdminToken) Resolve() (string, error) { return resolveSecret(t.Token, t.TokenFile) }

// Resolve returns the password: Password, or the content of PasswordFile.
func (u *AdminUser) Resolve() (string, error) { return resolveSecret(u.Password, u.PasswordFile) }

func resolveSecret(s Secret, file string) (string, error) {
	if file == "" {
		return s.Value(), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The error names the file, never its content.
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// IsLoopback reports whether the admin address is a loopback address
// (127.0.0.0/8, ::1 or localhost), reachable only from this machine.
func (a *Admin) IsLoopback() bool {
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// HasCredentials reports whether any admin credential is configured.
func (a *Admin) HasCredentials() bool {
	return a.Auth != nil && len(a.Auth.Tokens)+len(a.Auth.Users) > 0
}

func (a *Admin) validate(v *validator) {
	if a.Address == "off" {
		return
	}
	for i, h := range a.AllowedHosts {
		p := indexPath("admin.allowed_hosts", i)
		host, port := h, ""
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			host, port = hh, pp
		}
		if err := checkHostPort(net.JoinHostPort(host, orDefault(port, "0"))); err != nil || host == "" {
			v.errorf(p, "must be a host name or host:port, got %q", h)
		}
	}
	if !a.IsLoopback() && !a.HasCredentials() {
		v.errorfAt("admin.address", "admin.auth", "is required when admin.address (%s) is not a loopback address: set admin.auth.tokens or admin.auth.users", a.Address)
	}
	if a.Auth == nil {
		return
	}
	role := func(p, r string) {
		if r != "" && r != RoleAdmin && r != RoleReadOnly {
			v.errorf(p, "must be %s or %s, got %q", RoleAdmin, RoleReadOnly, r)
		}
	}
	names := map[string]bool{}
	for i := range a.Auth.Tokens {
		t := &a.Auth.Tokens[i]
		p := indexPath("admin.auth.tokens", i)
		role(p+".role", t.Role)
		if t.Name != "" {
			if names[t.Name] {
				v.errorf(p+".name", "duplicate credential name %q", t.Name)
			}
			names[t.Name] = true
		}
		switch {
		case t.Token != "" && t.TokenFile != "":
			v.errorf(p, "set token or token_file, not both")
		case t.Token == "" && t.TokenFile == "":
			v.errorf(p+".token", "is required (or token_file)")
		default:
			field := p + ".token"
			if t.TokenFile != "" {
				field = p + ".token_file"
			}
			tok, err := t.Resolve()
			switch {
			case err != nil:
				v.errorf(field, "%v", err)
			case len(tok) < MinAdminTokenLen:
				// Never the value, only its length.
				v.errorf(field, "must be at least %d characters long, got %d", MinAdminTokenLen, len(tok))
			}
		}
	}
	for i := range a.Auth.Users {
		u := &a.Auth.Users[i]
		p := indexPath("admin.auth.users", i)
		role(p+".role", u.Role)
		switch {
		case u.Username == "":
			v.errorf(p+".username", "is required")
		case strings.ContainsAny(u.Username, ":\r\n"):
			v.errorf(p+".username", "must not contain ':' or line breaks")
		case names[u.Username]:
			v.errorf(p+".username", "duplicate credential name %q", u.Username)
		}
		names[u.Username] = true
		switch {
		case u.Password != "" && u.PasswordFile != "":
			v.errorf(p, "set password or password_file, not both")
		case u.Password == "" && u.PasswordFile == "":
			v.errorf(p+".password", "is required (or password_file)")
		case u.PasswordFile != "":
			if pw, err := u.Resolve(); err != nil {
				v.errorf(p+".password_file", "%v", err)
			} else if pw == "" {
				v.errorf(p+".password_file", "is empty")
			}
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
