package proxy

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Probe sends one GET of path (and query) to a host of the service, with
// no client, and returns the status (0 when none came), how it failed
// (observe.ErrNone when it did not) and the time to the response headers.
// The outcome feeds the host's passive health like any attempt. ctx bounds
// it.
func (s *Service) Probe(ctx context.Context, path string) (int, observe.ErrorKind, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://probe"+path, nil)
	if err != nil {
		return 0, observe.ErrInternal, 0
	}
	host, err := s.Picker.Pick(req, nil)
	if err != nil {
		return 0, observe.ErrNoHealthyUpstream, 0
	}
	req.URL.Scheme, req.URL.Host = host.URL.Scheme, host.URL.Host
	req.Header.Set("User-Agent", "vantage-rollout-probe")
	host.Begin()
	start := time.Now()
	resp, err := s.Transport.RoundTrip(req)
	d := time.Since(start)
	if err != nil {
		kind := observe.Classify(err, context.Background())
		host.End(kind, 0)
		return 0, kind, d
	}
	drainAndClose(resp.Body)
	host.End(observe.ErrNone, resp.StatusCode)
	return resp.StatusCode, observe.ErrNone, d
}

// MirrorObserver hears the outcome of a mirrored copy: the service it was
// sent to, the shadow's status (0 when none came), how the attempt failed
// (observe.ErrNone when it did not) and the time to the response headers.
// It is called on a mirror goroutine, never on a client's, and must not
// block.
type MirrorObserver interface {
	Mirrored(service string, status int, kind observe.ErrorKind, d time.Duration)
}

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
	start := time.Now()
	resp, err := s.Transport.RoundTrip(out)
	if err != nil {
		kind := observe.Classify(err, context.Background())
		host.End(kind, 0)
		if s.Mirrors != nil {
			s.Mirrors.Mirrored(s.Name, 0, kind, time.Since(start))
		}
		return
	}
	d := time.Since(start)
	drainAndClose(resp.Body)
	host.End(observe.ErrNone, resp.StatusCode)
	if s.Mirrors != nil {
		s.Mirrors.Mirrored(s.Name, resp.StatusCode, observe.ErrNone, d)
	}
}
