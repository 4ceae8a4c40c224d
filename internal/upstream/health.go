package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// maxProbeBody is how much of a probe's response body is read (and
// discarded) before the connection is closed.
const maxProbeBody = 64 << 10

// probeURL is the URL probed for h: h2c hosts are probed with plain
// HTTP/1.1, which every h2c server built on net/http also speaks.
func probeURL(h *Host, path string) string {
	scheme := h.URL.Scheme
	if scheme == "h2c" {
		scheme = "http"
	}
	return scheme + "://" + h.URL.Host + path
}

// probe sends one health check to h and records its outcome.
func (p *Pool) probe(ctx context.Context, h *Host, target string) {
	hc := p.hc
	pctx, cancel := context.WithTimeout(ctx, hc.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, target, nil)
	if err != nil {
		p.recordProbe(h, false, observe.HealthRequestError, 0, err)
		return
	}
	if hc.host != "" {
		req.Host = hc.host
	}
	req.Header.Set("User-Agent", "vantage-health-check")
	resp, err := p.probeClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: not the host's fault
		}
		p.recordProbe(h, false, classifyProbeError(err), 0, err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	_ = resp.Body.Close()
	for _, m := range hc.expected {
		if m.Match(resp.StatusCode) {
			p.recordProbe(h, true, observe.HealthStatus, resp.StatusCode, nil)
			return
		}
	}
	p.recordProbe(h, false, observe.HealthStatus, resp.StatusCode, errors.New("unexpected status "+strconv.Itoa(resp.StatusCode)))
}

// recordProbe updates h's health-check streaks and, when one reaches its
// threshold, flips h's health and emits EventHealthChanged once.
func (p *Pool) recordProbe(h *Host, ok bool, reason observe.HealthReason, status int, err error) {
	hc := p.hc
	st := h.st
	now := p.clk.Now()
	result := probeResult(reason, status)
	var from, to observe.HealthState
	st.mu.Lock()
	st.lastCheck = now
	st.lastCheckResult = result
	if ok {
		st.lastCheckErr = ""
		st.checkFailures = 0
		st.checkSuccesses++
		if st.checkSuccesses >= hc.healthyThreshold && st.healthy.CompareAndSwap(false, true) {
			from, to = observe.HealthUnhealthy, observe.HealthHealthy
		}
	} else {
		st.lastCheckErr = err.Error()
		st.checkSuccesses = 0
		st.checkFailures++
		if st.checkFailures >= hc.unhealthyThreshold && st.healthy.CompareAndSwap(true, false) {
			from, to = observe.HealthHealthy, observe.HealthUnhealthy
		}
	}
	st.mu.Unlock()
	if !ok {
		p.logger.Debug("health check failed", "upstream", h.Addr, "result", result, "error", err)
	}
	if to == observe.HealthUnknown {
		return
	}
	if err != nil {
		p.logger.Info("upstream health changed", "upstream", h.Addr, "from", from.String(), "to", to.String(), "reason", result, "error", err)
	} else {
		p.logger.Info("upstream health changed", "upstream", h.Addr, "from", from.String(), "to", to.String(), "reason", result)
	}
	p.obs.Observe(observe.Event{
		Kind:     observe.EventHealthChanged,
		Time:     now,
		Service:  h.Service,
		Upstream: h.Addr,
		Health:   observe.HealthChange{From: from, To: to, Reason: reason, Status: status},
		Detail:   result,
		Err:      err,
	})
}

// probeResult is a probe's outcome in words, for the admin API, logs and
// Event.Detail: "status 503", "connect refused", ...
func probeResult(reason observe.HealthReason, status int) string {
	if reason == observe.HealthStatus {
		return "status " + strconv.Itoa(status)
	}
	return strings.ReplaceAll(reason.String(), "_", " ")
}

// classifyProbeError turns a failed probe's error into a bounded reason.
func classifyProbeError(err error) observe.HealthReason {
	var netErr net.Error
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return observe.HealthConnectRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return observe.HealthTimeout
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recordErr):
		return observe.HealthTLSError
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return observe.HealthConnectError
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return observe.HealthConnectionReset
	}
	return observe.HealthRequestError
}
