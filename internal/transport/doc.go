// Package transport is the http.RoundTripper the gateway uses to talk to a
// service's upstream hosts: one Transport per service, built from the
// service's transport config by Pools.New (or New, with pools of its own).
// It owns the upstream connection pools, which the Transports of one Pools
// share by address and settings (see Pools).
//
// # Schemes
//
// The request URL's scheme picks the client:
//
//   - http: the built-in HTTP/1.1 client described below.
//   - https: an *http.Transport built from the config (timeouts, pool
//     sizes, ca_file, server_name, insecure_skip_verify), HTTP/2 by ALPN
//     unless protocol is http1, HTTP/2 only when it is http2. It never
//     uses proxy environment variables and never compresses transparently.
//   - h2c: golang.org/x/net/http2's Transport over plain TCP (prior
//     knowledge), for gRPC upstreams. response_header_timeout is applied by
//     the package since x/net has no such knob.
//
// # Why a custom HTTP/1.1 client
//
// http.Transport runs two goroutines per connection: a writeLoop that the
// caller hands each request to, and a readLoop that reads the response and
// hands it back, then waits for the body to be consumed before the
// connection can be reused. That is several channel hand-offs and goroutine
// switches per request, which on a busy proxy costs more CPU than parsing
// HTTP. The gateway's performance bar (at most 0.75x the CPU per request of
// a minimal httputil.ReverseProxy) is hard to meet with it.
//
// The built-in client does the whole exchange on the caller's goroutine:
// take an idle connection (or dial), write the request through a pooled
// bufio.Writer, flush, and parse the response from a pooled bufio.Reader
// with http.ReadResponse. No goroutine exists per connection. Measured on
// loopback on a shared 2-core machine (BenchmarkRoundTrip: tiny httptest
// upstream in the same process; CPU time of the whole process per request,
// median of 8 interleaved runs, each with ±15-35% noise):
//
//	                      fast        net_http    ratio
//	sequential CPU/op     65 µs       88 µs       0.74
//	parallel CPU/op       46 µs       60 µs       0.77
//	allocs/op             36          62          (client and server)
//
// Against a canned upstream that costs almost nothing
// (BenchmarkRoundTripCanned), where the client dominates: 29 µs vs 44 µs
// per request sequentially (0.65), 28 µs vs 39 µs in parallel (0.70), and
// 11 vs 36 allocations (8 of the 11 are http.ReadResponse's, 2
// context.AfterFunc's). Most of what remains is system calls (one write and
// two reads per exchange); parsing the response is about a fifth of the
// client's own time and under a tenth of the total, too little to justify a
// parser of our own over http.ReadResponse.
// Options.DisableFastHTTP1 switches http:// back to an *http.Transport.
//
// # The HTTP/1.1 client's behaviour
//
// Connections are pooled per host:port, most recently used first, at most
// max_idle_conns_per_host idle; the pool of an address is shared by every
// Transport of the same Pools with the same client settings (Pools). An idle connection older than
// idle_conn_timeout is closed when a request or the pool's janitor timer
// finds it. One that idled longer than 100ms is probed with a non-blocking
// one-byte read before reuse, so an upstream that closed it (a keep-alive
// timeout shorter than ours) costs nothing; below 100ms the probe is not
// worth its system call. max_conns_per_host, when set, caps the
// connections a Transport has in use (busy or being dialed) to one host;
// requests wait for a free slot as long as their context allows.
//
// A reused connection that fails before the first response byte is retried
// once on a fresh connection under the rules of http.Transport: always when
// nothing was written and the body can be replayed (none, or GetBody set);
// otherwise only when the request is also idempotent (GET, HEAD, OPTIONS,
// TRACE, or an Idempotency-Key header), since the upstream may have acted on
// it. Nothing is retried once response bytes arrived.
//
// Request bodies are streamed: bodies of known length up to 64 KiB are
// written before the response is read; larger ones and bodies of unknown
// length (sent chunked, with req.Trailer) are written by a short-lived
// goroutine while the response is read, so that an upstream answering early
// or streaming both ways cannot deadlock the exchange. Response bodies are
// http.ReadResponse's (chunked, trailers in resp.Trailer after EOF, HEAD,
// 1xx skipped, 204/304, close-delimited). Reading one to EOF returns the
// connection to the pool; closing it before EOF closes the connection. A
// 101 Switching Protocols answer to a request with Connection: Upgrade
// returns a body that is an io.ReadWriteCloser over the raw connection.
//
// Since the client writes request heads itself, a wrapper can hand it
// header fields ready to write (RoundTripFields) instead of putting them
// in req.Header: the tracing wrapper does so with the trace context of
// every attempt, which saves an allocation, a map insert and a validation
// per attempt (BenchmarkTraceHeader).
//
// The request context is honoured while dialing, waiting for a connection,
// writing, waiting for headers and reading the body: when it ends, a
// context.AfterFunc puts the connection's deadline in the past, and the
// connection is never reused. response_header_timeout bounds the wait for
// headers after the request was written.
//
// # Errors
//
// The HTTP/1.1 client returns *Error, whose Kind is what observe.Classify
// reports for it (observe.Classify also places the errors of the https and
// h2c transports):
// ErrUpstreamConnect for dial failures (the cause is the *net.OpError with
// Op "dial"), ErrUpstreamTimeout for response_header_timeout and expired
// request deadlines (net.Error Timeout is true; errors.Is
// context.DeadlineExceeded holds for deadlines), ErrUpstreamReset for a
// connection that broke, ErrUpstreamProtocol for a response that is not
// valid HTTP, ErrClientCanceled when the request context was canceled,
// ErrClientCanceled, ErrClientBadRequest or ErrClientTimeout when reading
// the request body failed (the cause is then an *observe.RequestBodyError:
// the client's fault, never the upstream's), and ErrInternal for a request
// that cannot be written (invalid header, no host).
//
// All exported functions and methods are safe for concurrent use.
package transport
