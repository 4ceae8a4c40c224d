//go:build !unix

package transport

import "time"

// cpuTime returns 0 where it is not measured.
func cpuTime() time.Duration { return 0 }
