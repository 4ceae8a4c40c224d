package tracing

import (
	"testing"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// TestClientErrorsDoNotFailAttemptSpans: an attempt cut short by its
// client (gone, a body that cannot be read, a body too slow) is not the
// attempt's failure, so its CLIENT span keeps an unset status; upstream
// failures and 5xx set it.
func TestClientErrorsDoNotFailAttemptSpans(t *testing.T) {
	for _, tc := range []struct {
		a    observe.Attempt
		want bool
	}{
		{observe.Attempt{ErrorKind: observe.ErrClientCanceled}, false},
		{observe.Attempt{ErrorKind: observe.ErrClientBadRequest}, false},
		{observe.Attempt{ErrorKind: observe.ErrClientTimeout}, false},
		{observe.Attempt{ErrorKind: observe.ErrUpstreamReset}, true},
		{observe.Attempt{Status: 503}, true},
		{observe.Attempt{Status: 200, ErrorKind: observe.ErrClientTimeout}, false},
	} {
		if got := attemptFailed(&tc.a); got != tc.want {
			t.Errorf("attemptFailed(%v, %d) = %v, want %v", tc.a.ErrorKind, tc.a.Status, got, tc.want)
		}
	}
}
