package reliability

import (
	"fmt"
	"strings"
	"time"
)

// Row is one figure of a scenario: what was measured, its value, and what
// the scenario expects of it.
type Row struct {
	Scenario string
	Measure  string
	Value    string
	Expect   string
	// Pass is the verdict against Expect; nil when the figure is
	// informational.
	Pass *bool
}

// Verdict is a helper for Row.Pass.
func Verdict(ok bool) *bool { return &ok }

// Markdown renders rows as a table with a verdict column.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| scenario | measure | value | expected | verdict |\n|---|---|---:|---|---|\n")
	for _, r := range rows {
		v := ""
		if r.Pass != nil {
			v = "ok"
			if !*r.Pass {
				v = "**FAIL**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Measure, r.Value, r.Expect, v)
	}
	return b.String()
}

// Ms formats d in milliseconds with one decimal.
func Ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// MB formats a byte count in MiB with one decimal.
func MB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Failed reports a count of failures as "n of total".
func Failed(n, total int64) string { return fmt.Sprintf("%d of %d", n, total) }
