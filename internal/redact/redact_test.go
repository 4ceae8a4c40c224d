package redact

import (
	"net/http"
	"strings"
	"testing"
)

func TestParamDefaultRule(t *testing.T) {
	redacted := []string{
		"jwt", "JWT", "access-token", "access_token", "accessToken", "x-api-key", "api_key", "apikey",
		"auth_token", "auth", "oauth", "session_id", "sessionid", "SESSION", "sig", "signature",
		"X-Amz-Signature", "X-Amz-Credential", "x-amz-security-token", "client_secret", "password",
		"passwd", "pwd", "user[password]", "code", "state", "Authorization", "refresh_token",
		"id_token", "key", "credentials", "%74oken", "%74OKEN", "api+key", "api%20key", "access%5Ftoken",
		"to%2Dken", strings.Repeat("x", MaxNameBytes+1),
	}
	for _, k := range redacted {
		if !Default().Param(k) {
			t.Errorf("Param(%q) = false, want redacted", k)
		}
	}
	kept := []string{
		"", "page", "q", "tokens", "codes", "statement", "user", "id", "sort", "%zz", "-", "keyword",
		"authored", "session_count", "signed", strings.Repeat("x", MaxNameBytes),
	}
	for _, k := range kept {
		if Default().Param(k) {
			t.Errorf("Param(%q) = true, want kept", k)
		}
	}
}

func TestOptions(t *testing.T) {
	p, err := New(Options{
		QueryParams:       []string{"tenant-ref", "sso"},
		ExemptQueryParams: []string{"state", "Idempotency_Key"},
		Headers:           []string{"X-Tenant"},
		ExemptHeaders:     []string{"Sec-WebSocket-Key"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{
		"tenant_ref": true, "TenantRef": true, "x_tenant_ref": false, "sso": true,
		"state": false, "oauth_state": false, "idempotency-key": false, "api_key": true, "code": true,
	} {
		if got := p.Param(k); got != want {
			t.Errorf("Param(%q) = %v, want %v", k, got, want)
		}
	}
	for h, want := range map[string]bool{
		"X-Tenant": true, "Sec-WebSocket-Key": false, "Authorization": true, "Cookie": true,
		"X-Api-Key": true, "X-Tenant-Secret": true, "X-Request-Id": false, "User-Agent": false,
		"Set-Cookie": true, "X-Hub-Signature": true,
	} {
		if got := p.Header(h); got != want {
			t.Errorf("Header(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestNewRefusesBadNames(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{QueryParams: []string{"--"}}, `"--" has no letter or digit`},
		{Options{ExemptQueryParams: []string{"page"}}, `"page" is not redacted by default`},
		{Options{QueryParams: []string{"token"}, ExemptQueryParams: []string{"TOKEN"}}, "both redacted and exempt"},
		{Options{ExemptHeaders: []string{"Authorization"}}, `"Authorization" carries credentials`},
		{Options{ExemptHeaders: []string{"Cookie"}}, `"Cookie" carries credentials`},
		{Options{ExemptHeaders: []string{"X-Request-Id"}}, "nothing to exempt"},
	}
	for _, c := range cases {
		if _, err := New(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", c.o, err, c.want)
		}
	}
}

func TestQuery(t *testing.T) {
	p := Default()
	cases := []struct{ in, want string }{
		{"", ""},
		{"a=1", "a=1"},
		{"page=2&sort=asc", "page=2&sort=asc"},
		{"token=x", "token=REDACTED"},
		{"TOKEN=x&a=1", "TOKEN=REDACTED&a=1"},
		{"%74oken=x", "%74oken=REDACTED"},
		{"token", "token"},
		{"token=", "token=REDACTED"},
		{"a=token", "a=token"},
		{"%zz=1&token=x&&", "%zz=1&token=REDACTED&&"},
		{"a=1;token=x", "a=1;token=REDACTED"},
		{"token=x;page=2&b=1", "token=REDACTED&b=1"},
		{"token=x;token=y", "token=REDACTED"},
		{"a=1&", "a=1&"},
		{";", ";"},
		{strings.Repeat("x", 200) + "=secret", strings.Repeat("x", 200) + "=REDACTED"},
		{"jwt=eyJ&access-token=at&x-api-key=ak&auth_token=tk&session_id=sid&page=2",
			"jwt=REDACTED&access-token=REDACTED&x-api-key=REDACTED&auth_token=REDACTED&session_id=REDACTED&page=2"},
	}
	for _, c := range cases {
		if got := p.Query(c.in); got != c.want {
			t.Errorf("Query(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := string(p.AppendQuery([]byte("<"), c.in, 0, nil)); got != "<"+c.want {
			t.Errorf("AppendQuery(%q) = %q, want %q", c.in, got, "<"+c.want)
		}
	}
	// A cut query keeps no part of a secret.
	long := strings.Repeat("a=1&", 100) + "token=secret"
	for limit := 1; limit <= len(long); limit++ {
		if got := string(p.AppendQuery(nil, long, limit, nil)); strings.Contains(got, "sec") || len(got) > limit+len(Mark) {
			t.Fatalf("limit %d: %q", limit, got)
		}
	}
}

func TestURL(t *testing.T) {
	p := Default()
	cases := []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{"https://example.com/a?page=1#top", "https://example.com/a?page=1#top"},
		{"https://example.com/cb?code=abc&state=xyz", "https://example.com/cb?code=REDACTED&state=REDACTED"},
		{"https://example.com/cb#access_token=abc&token_type=bearer", "https://example.com/cb#access_token=REDACTED&token_type=bearer"},
		{"https://ann:hunter2@example.com/x", "https://REDACTED:REDACTED@example.com/x"},
		{"https://ann@example.com/?key=k", "https://REDACTED:REDACTED@example.com/?key=REDACTED"},
		{"/login?next=/a&password=p", "/login?next=/a&password=REDACTED"},
		{"mailto:ann@example.com", "mailto:ann@example.com"},
		{"/x?u=http://a:b@c", "/x?u=http://a:b@c"},
	}
	for _, c := range cases {
		if got := p.URL(c.in); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// A cut inside the user information shows none of it.
	u := "https://ann:" + strings.Repeat("p", 50) + "@example.com/"
	for limit := 1; limit <= len(u); limit++ {
		got := string(p.AppendURL(nil, u, limit, nil))
		if strings.Contains(got, "pp") || strings.Contains(got, "ann") {
			t.Fatalf("limit %d: %q", limit, got)
		}
	}
}

func TestHeaders(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer s3cret"}, "X-Request-Id": {"r1"}, "Cookie": {"a=1", "b=2"}}
	got := Default().Headers(h)
	if got.Get("Authorization") != Mark || got.Get("X-Request-Id") != "r1" || len(got["Cookie"]) != 2 || got["Cookie"][1] != Mark {
		t.Fatalf("Headers = %v", got)
	}
	if h.Get("Authorization") != "Bearer s3cret" {
		t.Fatal("Headers modified its argument")
	}
	plain := http.Header{"Accept": {"*/*"}}
	if got := Default().Headers(plain); &got["Accept"][0] != &plain["Accept"][0] {
		t.Fatal("Headers copied a header map with nothing to redact")
	}
	if Default().HeaderValue("X-Api-Key", "k") != Mark || Default().HeaderValue("Accept", "a") != "a" {
		t.Fatal("HeaderValue")
	}
}

func TestNilPolicyIsDefault(t *testing.T) {
	var p *Policy
	if p.Query("token=x") != "token=REDACTED" || !p.Header("Cookie") || p.Param("page") {
		t.Fatal("nil policy differs from Default")
	}
}

func TestNoAllocationWhenNothingRedacted(t *testing.T) {
	p, _ := New(Options{QueryParams: []string{"sso"}})
	q := "page=2&sort=asc&filter=shoes;lang=en"
	u := "https://shop.example.com/search?" + q + "#results"
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		_ = p.Query(q)
		_ = p.URL(u)
		buf = p.AppendQuery(buf[:0], q, 4096, nil)
		buf = p.AppendURL(buf[:0], u, 4096, nil)
		_ = p.Header("X-Request-Id")
	}); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
	// Redacting into a buffer with room allocates nothing either.
	s := "token=abc&page=2"
	if n := testing.AllocsPerRun(100, func() { buf = p.AppendQuery(buf[:0], s, 0, nil) }); n != 0 {
		t.Fatalf("AppendQuery with a redaction: %v allocations per run", n)
	}
}

// parts splits a query as AppendQuery does.
func parts(q string) []string {
	return strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' })
}

func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		"", "a=1", "token=x&page=2", "jwt=eyJ&access-token=at&x-api-key=ak&auth_token=tk&session_id=sid&page=2",
		"a=1;token=x;b=2&c=3", "%74oken=x", "token", "token==x=y", "&&;;", "api+key=1", "%zz=1",
		strings.Repeat("k", 130) + "=v",
	} {
		f.Add(s, "sso", "state")
	}
	f.Fuzz(func(t *testing.T, q, extra, exempt string) {
		p, err := New(Options{QueryParams: []string{extra}, ExemptQueryParams: []string{exempt}})
		if err != nil {
			p = Default()
		}
		out := p.Query(q)
		// Idempotent.
		if again := p.Query(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", q, out, again)
		}
		// The appending forms agree with Query.
		if got := string(p.AppendQuery(nil, q, 0, nil)); got != out {
			t.Fatalf("AppendQuery %q != Query %q", got, out)
		}
		// Every redacted parameter of the output has the mark as its value,
		// and every part of the output is a part of the input or a
		// redacted one: no value of a redacted key survives.
		in := map[string]bool{}
		for _, part := range parts(q) {
			in[part] = true
		}
		for _, part := range parts(out) {
			key, val, ok := strings.Cut(part, "=")
			if ok && p.Param(key) {
				if val != Mark {
					t.Fatalf("redacted key %q kept value %q in %q (from %q)", key, val, out, q)
				}
				continue
			}
			if !in[part] {
				t.Fatalf("part %q of %q is not from the input %q", part, out, q)
			}
		}
		if !p.queryNeeds(q) && out != q {
			t.Fatalf("nothing to redact, but %q became %q", q, out)
		}
	})
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"/a?token=x", "https://u:p@h/p?code=c#state=s", "https://h/#access_token=t", "http://@/", "x://a@b",
		"/?a=http://u:p@h", "https://u:p@",
	} {
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, u string, limit int) {
		p := Default()
		out := p.URL(u)
		if again := p.URL(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", u, out, again)
		}
		if start, end := userinfo(out); end > 0 && out[start:end] != userinfoMark {
			t.Fatalf("user information %q kept in %q (from %q)", out[start:end], out, u)
		}
		if limit < 0 {
			limit = -limit
		}
		_ = p.AppendURL(nil, u, limit%(len(u)+2), nil) // must not panic
	})
}

func FuzzHeader(f *testing.F) {
	f.Add("Authorization", "X-Foo")
	f.Add("x-api-key", "Sec-WebSocket-Key")
	f.Fuzz(func(t *testing.T, name, exempt string) {
		p, err := New(Options{ExemptHeaders: []string{exempt}})
		if err != nil {
			p = Default()
		}
		if contains(credentialHeaders, Normalize(name)) && !p.Header(name) {
			t.Fatalf("credential header %q not redacted", name)
		}
		if p.Header(name) != p.Header(strings.ToUpper(name)) {
			t.Fatalf("case changes the decision for %q", name)
		}
	})
}

func TestDefaultParamMatchesLists(t *testing.T) {
	var names []string
	for _, s := range append(append([]string{}, defaultSuffixes...), defaultExact...) {
		for _, v := range []string{s, s[1:], s[:len(s)-1], s + "s", s + "x"} {
			for _, pre := range []string{"", "x", "ab", "session", "api"} {
				names = append(names, pre+v)
			}
		}
	}
	names = append(names, "", "a", "ab", "page", "lang", "sort", "filter", "q", "jwtoken", "nd")
	for _, k := range names {
		want := hasSuffix([]byte(k), defaultSuffixes) || containsBytes(defaultExact, []byte(k))
		if got := defaultParam([]byte(k)); got != want {
			t.Errorf("defaultParam(%q) = %v, the lists say %v", k, got, want)
		}
	}
}
