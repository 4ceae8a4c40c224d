package tracing

import (
	"testing"

	"github.com/vantage-gateway/vantage/internal/redact"
)

func BenchmarkRedactQueryCmp(b *testing.B) {
	tr := &Tracing{redact: redact.Default()}
	for _, c := range []struct{ name, q string }{
		{"clean", "page=2&sort=asc&filter=shoes&lang=en"},
		{"token", "page=2&access_token=abcdef&lang=en"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				_ = tr.redact.Query(c.q)
			}
		})
	}
}
