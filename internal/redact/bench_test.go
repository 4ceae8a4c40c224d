package redact

import "testing"

// BenchmarkQuery measures the per-request cost of redacting url.query: a
// query with nothing to redact (the hot path: no allocation), and one with
// a token.
func BenchmarkQuery(b *testing.B) {
	p := Default()
	for _, c := range []struct{ name, q string }{
		{"clean", "page=2&sort=asc&filter=shoes&lang=en"},
		{"token", "page=2&access_token=abcdef&lang=en"},
	} {
		b.Run(c.name+"/string", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				_ = p.Query(c.q)
			}
		})
		b.Run(c.name+"/append", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 256)
			for range b.N {
				buf = p.AppendQuery(buf[:0], c.q, 4096, nil)
			}
		})
	}
}

// BenchmarkURL measures redacting a Referer with nothing to redact.
func BenchmarkURL(b *testing.B) {
	p := Default()
	u := "https://shop.example.com/search?page=2&sort=asc&filter=shoes#results"
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for range b.N {
		buf = p.AppendURL(buf[:0], u, 4096, nil)
	}
}
