package metrics

import (
	"strconv"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Label values used when a dimension does not apply or is out of bounds.
const (
	// none is the value of a label that does not apply: the service of a
	// request no service was chosen for, the upstream of a service-wide
	// breaker, a KPI header that was missing.
	none = "none"
	// other is the value for anything outside a label's fixed set.
	other = "other"
	// unmatchedRoute is the route label of requests no route matched.
	unmatchedRoute = "unmatched"
)

// Methods: the fixed set of the method label, index 0 is "other".
const (
	methodOther = iota
	methodGET
	methodHEAD
	methodPOST
	methodPUT
	methodPATCH
	methodDELETE
	methodOPTIONS
	methodCONNECT
	methodTRACE
	numMethods
)

var methodNames = [numMethods]string{other, "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// methodIndex sanitises an HTTP method to its index in methodNames. Only
// the exact upper-case standard methods have their own value.
func methodIndex(m string) int {
	switch m {
	case "GET":
		return methodGET
	case "HEAD":
		return methodHEAD
	case "POST":
		return methodPOST
	case "PUT":
		return methodPUT
	case "PATCH":
		return methodPATCH
	case "DELETE":
		return methodDELETE
	case "OPTIONS":
		return methodOPTIONS
	case "CONNECT":
		return methodCONNECT
	case "TRACE":
		return methodTRACE
	}
	return methodOther
}

// Status classes: index 0 is "other" (a status outside 100..599).
const numClasses = 6

var classNames = [numClasses]string{other, "1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// codeNames holds the code label of every status 100..599; anything else
// is "other". Built once, read-only.
var codeNames = func() [600]string {
	var t [600]string
	for i := range t {
		if i < 100 {
			t[i] = other
		} else {
			t[i] = strconv.Itoa(i)
		}
	}
	return t
}()

func codeName(status int) string {
	if status < 0 || status >= len(codeNames) {
		return other
	}
	return codeNames[status]
}

// codeKey is a status's index among the code label's values: the status
// itself for 100..599, 600 for every other (labelled "other").
func codeKey(status int) uint32 {
	if status < 100 || status >= len(codeNames) {
		return uint32(len(codeNames))
	}
	return uint32(status)
}

// Upstream attempt classes: the status classes plus "none" for an attempt
// that got no response.
const (
	attemptNone = numClasses
	numAttempts = numClasses + 1
)

var attemptClassNames = [numAttempts]string{other, "1xx", "2xx", "3xx", "4xx", "5xx", none}

func attemptClass(status int) int {
	if status == 0 {
		return attemptNone
	}
	return classIndex(status)
}

// grpcNames are the canonical gRPC status code names, index = code.
var grpcNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

const numGRPC = len(grpcNames) + 1 // the last is "other"

func grpcIndex(code int) int {
	if code < 0 || code >= len(grpcNames) {
		return len(grpcNames)
	}
	return code
}

func grpcName(i int) string {
	if i < len(grpcNames) {
		return grpcNames[i]
	}
	return other
}

// orNone returns s, or "none" when it is empty.
func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// orOther returns s, or "other" when it is empty or "unknown": an enum
// value outside its set.
func orOther(s string) string {
	if s == "" || s == "unknown" {
		return other
	}
	return s
}

// breakerStates are the values of the breaker state label: the enum's
// labels, so a state gauge series exists for each.
var breakerStates = func() []string {
	var out []string
	for _, st := range observe.BreakerStates() {
		out = append(out, st.String())
	}
	return out
}()

// splitReason bounds the reason of a split choice; none counts as weight.
func splitReason(r observe.SplitReason) string {
	if r == observe.SplitReasonNone {
		return observe.SplitWeight.String()
	}
	return orOther(r.String())
}

// retryReason is the reason label of a retry: the cause's label, "none"
// without one, "other" outside the sets.
func retryReason(c observe.RetryCause) string {
	s := c.String()
	switch s {
	case "":
		return none
	case "unknown", "status_other":
		return other
	}
	return s
}

// healthState bounds a health state; unknown is "other".
func healthState(s observe.HealthState) string { return orOther(s.String()) }

// boundedValue returns s when it is a short label-safe token (letters,
// digits, '_', '-', '.', ':', '+', '/'), "none" when empty, else "other". It
// keeps reasons written by other packages ("connect_error", "status_503")
// while refusing free text.
func boundedValue(s string) string {
	if s == "" {
		return none
	}
	if len(s) > 64 {
		return other
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '+' || c == '/') {
			return other
		}
	}
	return s
}
