// Package netio makes socket reads and writes cheaper for a proxy that
// does four of them per forwarded transaction.
//
// The Go runtime treats every read(2) and write(2) on a socket as a system
// call that may block: it hands the processor back (entersyscall) and its
// monitor thread (sysmon) takes the processor away from any call that
// lasts longer than about 20 µs, waking another thread to run it. On a
// virtual machine where a loopback write that wakes the receiver can take
// that long, this happens on a large share of calls: the profile of the
// transaction-mode relay showed sysmon polling every 20 µs (17% of the
// proxy's CPU) and the extra thread hand-offs on top. But a read or write
// on a non-blocking socket never blocks (EAGAIN instead), so Conn makes
// them as raw system calls and leaves waiting for readiness, deadlines and
// Close to the runtime's poller (syscall.RawConn), exactly as net.Conn
// does.
package netio

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a net.Conn whose Read and Write make raw system calls. Its
// other methods (deadlines, Close, addresses) are the wrapped
// connection's, on the same file descriptor.
type Conn struct {
	net.Conn
	rc syscall.RawConn
	// stall bounds how long one Write waits for a full socket to drain
	// (0: forever); see SetStallTimeout.
	stall atomic.Int64
}

// SetStallTimeout bounds how long a Write may wait for the peer to read
// (the socket's send buffer is full): past d the Write fails with
// os.ErrDeadlineExceeded. Writes that find room cost nothing extra; the
// deadline is set only when one must wait. The caller must set no write
// deadline of its own meanwhile (the stall's replaces it). 0 turns it off.
func (c *Conn) SetStallTimeout(d time.Duration) { c.stall.Store(int64(d)) }

var (
	_ net.Conn      = (*Conn)(nil)
	_ syscall.Conn  = (*Conn)(nil)
	_ io.ReaderFrom = (*Conn)(nil)
)

// Wrap returns c as a *Conn when it is a socket (TCP or Unix), else c.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{Conn: c, rc: rc}
}

// SyscallConn exposes the raw connection.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// Read reads at least one byte into p, waiting for the socket to be
// readable; io.EOF when the peer has closed.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno = rawRead(fd, p)
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting for the socket to be writable as often
// as needed.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	stalled := false
	defer func() {
		if stalled {
			_ = c.Conn.SetWriteDeadline(time.Time{})
		}
	}()
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, e := rawWrite(fd, p[written:])
			if e == syscall.EAGAIN {
				if d := c.stall.Load(); d > 0 && !stalled {
					stalled = true
					_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Duration(d)))
				}
				return false
			}
			if e != 0 {
				errno = e
				return true
			}
			written += n
		}
		return true
	})
	switch {
	case err != nil:
		return written, err
	case errno != 0:
		return written, c.opError("write", errno)
	}
	return written, nil
}

// ReadFrom keeps io.Copy on this Conn's Write (net.TCPConn's ReadFrom
// would bypass it).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(),
		Err: os.NewSyscallError(op, errno)}
}

// RawRead is read(2) without the runtime's syscall bookkeeping, for use
// inside syscall.RawConn.Read; the socket is non-blocking (every
// net.Conn's is), so it cannot block. p must not be empty.
func RawRead(fd uintptr, p []byte) (int, syscall.Errno) { return rawRead(fd, p) }

func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// rawWrite is write(2), likewise.
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// Silent reports whether nothing can be read from c right now: no data and
// no end of stream. A pooled server connection must be silent while idle;
// one that is not has been ended by the server (a restart sends FATAL
// 57P01 and closes; a crash closes). It peeks without consuming and
// without waiting. Connections that are not sockets (or a TLS connection
// over one, checked on the socket underneath, where any record at all
// means the server spoke) count as silent when they cannot be checked.
func Silent(c net.Conn) bool {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	silent := true
	var one [1]byte
	_ = rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		silent = n <= 0 && err == syscall.EAGAIN
	})
	return silent
}
