package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
)

// Traces is what the dashboard reads of a trace backend: one trace with
// its log records, a search, and the calls between services. The embedded
// trace store implements it (StoreTraces); a fleet can put Jaeger or Tempo
// behind it. Implementations are safe for concurrent use and return values
// the caller owns.
type Traces interface {
	// Trace returns the trace id with its log records, or an error
	// wrapping ErrTraceNotFound when the backend does not hold it.
	Trace(ctx context.Context, id tracestore.TraceID) (*tracestore.Trace, error)
	// Search returns the summaries of the traces q selects, newest first,
	// at most q.Limit.
	Search(ctx context.Context, q tracestore.Query) ([]tracestore.Summary, error)
	// Dependencies returns the calls between services over
	// [end-lookback, end].
	Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]tracestore.Dependency, error)
}

// ErrTraceNotFound is wrapped by Traces.Trace for a trace the backend does
// not hold.
var ErrTraceNotFound = errors.New("trace not found")

// StoreReader is what StoreTraces reads of the embedded trace store
// (*tracestore.Store implements it).
type StoreReader interface {
	GetTrace(id tracestore.TraceID, open bool) (*tracestore.Trace, bool)
	Search(q tracestore.Query) []tracestore.Summary
	Dependencies(end time.Time, lookback time.Duration) []tracestore.Dependency
}

var _ StoreReader = (*tracestore.Store)(nil)

// StoreTraces adapts the embedded trace store to Traces. Reading a trace
// through it pins the trace, as opening it anywhere else does (a person
// looked at it).
func StoreTraces(s StoreReader) Traces { return storeTraces{s} }

type storeTraces struct{ s StoreReader }

func (st storeTraces) Trace(_ context.Context, id tracestore.TraceID) (*tracestore.Trace, error) {
	t, ok := st.s.GetTrace(id, true)
	if !ok {
		return nil, fmt.Errorf("trace %s: %w", id, ErrTraceNotFound)
	}
	return t, nil
}

func (st storeTraces) Search(_ context.Context, q tracestore.Query) ([]tracestore.Summary, error) {
	return st.s.Search(q), nil
}

func (st storeTraces) Dependencies(_ context.Context, end time.Time, lookback time.Duration) ([]tracestore.Dependency, error) {
	return st.s.Dependencies(end, lookback), nil
}

// Dependency is one edge of GET /api/dashboard/dependencies: the calls
// from Parent to Child over the lookback.
type Dependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount int64  `json:"calls"`
}

func (h *Handler) noTraces(w http.ResponseWriter) bool {
	if h.o.Traces != nil {
		return false
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "this gateway has no trace store (trace_store.enabled is false)"})
	return true
}

// serveTrace answers GET /api/dashboard/traces/{traceID} with the trace's
// document (queryapi.TraceDoc, the same as GET /api/traces/{traceID}).
func (h *Handler) serveTrace(w http.ResponseWriter, r *http.Request) {
	if h.noTraces(w) {
		return
	}
	raw := r.PathValue("traceID")
	id, err := tracestore.ParseTraceID(raw)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("trace id %q: %v", truncate(raw), err)})
		return
	}
	t, err := h.o.Traces.Trace(r.Context(), id)
	switch {
	case errors.Is(err, ErrTraceNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("trace %s is not in the trace store (never kept, or evicted)", id)})
		return
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "reading the trace: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, queryapi.NewTraceDoc(t))
}

// serveSearch answers GET /api/dashboard/traces with the parameters of
// GET /api/traces (queryapi.ParseVantageSearch).
func (h *Handler) serveSearch(w http.ResponseWriter, r *http.Request) {
	if h.noTraces(w) {
		return
	}
	q, err := queryapi.ParseVantageSearch(r.URL.RawQuery, h.o.Clock.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	res, err := h.o.Traces.Search(r.Context(), q)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "searching traces: " + err.Error()})
		return
	}
	out := make([]queryapi.SummaryDoc, 0, len(res))
	for _, s := range res {
		out = append(out, queryapi.SummaryDoc{
			TraceID: s.TraceID.String(), Start: s.Start.UTC(), DurationMS: float64(s.Duration) / float64(time.Millisecond),
			RootService: s.RootService, RootName: s.RootName, Route: s.Route, Status: s.HTTPStatus,
			ErrorKind: s.ErrorKind, Class: s.Class.String(), Spans: s.Spans, Errors: s.Errors, Logs: s.Logs,
			Services: s.Services,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"traces": out, "limit": q.Limit})
}

// serveDependencies answers GET /api/dashboard/dependencies?lookback=
// (1s to 24h, default 15m) with the calls between services up to now.
func (h *Handler) serveDependencies(w http.ResponseWriter, r *http.Request) {
	if h.noTraces(w) {
		return
	}
	for k := range r.URL.Query() {
		if k != "lookback" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown parameter " + strconv.Quote(truncate(k)) + " (known: lookback)"})
			return
		}
	}
	lookback, err := parseSpan("lookback", r.URL.Query().Get("lookback"), 15*time.Minute)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	deps, err := h.o.Traces.Dependencies(r.Context(), h.o.Clock.Now(), lookback)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "reading dependencies: " + err.Error()})
		return
	}
	out := make([]Dependency, 0, len(deps))
	for _, d := range deps {
		out = append(out, Dependency{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount})
	}
	writeJSON(w, http.StatusOK, map[string]any{"lookback": lookback.String(), "dependencies": out})
}
