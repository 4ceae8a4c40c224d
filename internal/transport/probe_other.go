//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package transport

// initProbe does nothing where the idle probe is not supported.
func (c *conn) initProbe() {}

// alive reports true: without a probe, a dead idle connection is found by
// the request that reuses it, and retried.
func (c *conn) alive() bool { return true }
