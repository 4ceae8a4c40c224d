package observetest

import (
	"net/http"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// ResponseWriter stands in for the gateway entry handler's response
// recorder in tests of code that runs inside the chain: it notes the
// status (200 on a first Write without WriteHeader) and the body bytes
// written in Rec.
type ResponseWriter struct {
	http.ResponseWriter
	Rec *observe.Record
}

// WriteHeader implements http.ResponseWriter.
func (w *ResponseWriter) WriteHeader(code int) {
	if w.Rec.Status == 0 {
		w.Rec.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	if w.Rec.Status == 0 {
		w.Rec.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.Rec.BytesOut += int64(n)
	return n, err
}
