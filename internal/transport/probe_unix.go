//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package transport

import "syscall"

// initProbe prepares alive: it binds the raw socket once per connection
// so a probe allocates nothing.
func (c *conn) initProbe() {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.raw = raw
	c.probeFn = c.probeRead
}

// probeRead tries a one-byte read on the non-blocking socket. Only "would
// block" means alive: EOF means the server closed it, data means it sent
// something unasked (typically a 408 before closing), an error means reset.
func (c *conn) probeRead(fd uintptr) bool {
	_, err := syscall.Read(int(fd), c.probeBuf[:])
	c.probeAlive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true // never wait for readiness
}

// alive reports whether an idle connection still looks usable. It costs
// one system call and is only done after a connection idled a while.
func (c *conn) alive() bool {
	if c.raw == nil {
		return true
	}
	if err := c.raw.Read(c.probeFn); err != nil {
		return false
	}
	return c.probeAlive
}
