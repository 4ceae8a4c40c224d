package proxy

import (
	"context"
	"net/http"
	"net/url"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Send proxies a mirrored copy of a request to the service and discards the
// response: the shadow side of traffic mirroring. It blocks for the whole
// exchange, so callers run it off the request path (the mirror middleware
// does, on its own bounded workers). The outcome feeds the shadow host's
// passive health like any other attempt, and never reaches the client.
func (s *Service) Send(r *http.Request) {
	host, err := s.Picker.Pick(r, nil)
	if err != nil {
		return
	}
	out := r.Clone(r.Context())
	u := new(url.URL)
	*u = *r.URL
	u.Scheme, u.Host = host.URL.Scheme, host.URL.Host
	out.URL = u
	out.RequestURI = ""
	out.Header = cloneRequestHeader(r.Header)
	if out.ContentLength == 0 {
		out.Body = nil
	}
	host.Begin()
	resp, err := s.Transport.RoundTrip(out)
	if err != nil {
		host.End(observe.Classify(err, context.Background()), 0)
		return
	}
	drainAndClose(resp.Body)
	host.End(observe.ErrNone, resp.StatusCode)
}
