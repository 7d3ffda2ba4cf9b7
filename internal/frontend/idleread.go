package frontend

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/multigres-proxy/multigres/internal/netio"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// idleReader is a client's read buffer that exists only while it holds
// unread bytes. A goroutine blocked in a plain Read must own the buffer it
// reads into, and with thousands of idle clients in transaction pooling
// those buffers add up; idleReader instead waits for the socket to become
// readable through syscall.RawConn with no buffer, borrows one from a pool
// for the read, and gives it back as soon as it is drained. Deadlines and
// Close work as for any net.Conn read (RawConn honours them), so idle
// timeouts and kill are unchanged. Plain TCP only: a TLS connection keeps
// its bufio.Reader (crypto/tls buffers records itself).
type idleReader struct {
	rc   syscall.RawConn
	cnt  countingConn // the byte counters only
	buf  *[]byte      // nil while empty
	r, w int
}

var _ wire.BufferedReader = (*idleReader)(nil)

var readBufs = sync.Pool{New: func() any { b := make([]byte, clientReadBuffer); return &b }}

// newIdleReader takes over from rd (whose buffered bytes it keeps) when
// nc is a plain socket, or returns nil.
func newIdleReader(nc countingConn, rd *bufio.Reader) (*idleReader, error) {
	sc, ok := nc.Conn.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw client connection: %w", err)
	}
	z := &idleReader{rc: rc, cnt: nc}
	if n := rd.Buffered(); n > 0 {
		z.borrow()
		z.w, _ = io.ReadFull(rd, (*z.buf)[:n])
	}
	return z, nil
}

func (z *idleReader) borrow() {
	z.buf = readBufs.Get().(*[]byte)
	z.r, z.w = 0, 0
}

// giveBack returns the buffer once everything in it was read.
func (z *idleReader) giveBack() {
	if z.buf != nil && z.r == z.w {
		readBufs.Put(z.buf)
		z.buf = nil
		z.r, z.w = 0, 0
	}
}

// Buffered reports the bytes read from the socket and not yet consumed.
func (z *idleReader) Buffered() int { return z.w - z.r }

// Peek returns the next n bytes without consuming them.
func (z *idleReader) Peek(n int) ([]byte, error) {
	if n > clientReadBuffer {
		return nil, bufio.ErrBufferFull
	}
	for z.Buffered() < n {
		if err := z.fill(); err != nil {
			if z.buf == nil {
				return nil, err
			}
			return (*z.buf)[z.r:z.w], err
		}
	}
	return (*z.buf)[z.r : z.r+n], nil
}

// Read reads buffered bytes, or (with none) from the socket: straight into
// p when p is at least a buffer's size, as bufio.Reader does.
func (z *idleReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if z.Buffered() == 0 {
		if len(p) >= clientReadBuffer {
			return z.readInto(p)
		}
		if err := z.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*z.buf)[z.r:z.w])
	z.r += n
	z.giveBack()
	return n, nil
}

// fill reads at least one more byte into the buffer.
func (z *idleReader) fill() error {
	if z.buf != nil && z.r > 0 {
		z.w = copy(*z.buf, (*z.buf)[z.r:z.w])
		z.r = 0
	}
	var n int
	var rerr error
	err := z.rc.Read(func(fd uintptr) bool {
		if z.buf == nil {
			z.borrow()
		}
		n, rerr = rawRead(fd, (*z.buf)[z.w:])
		if errors.Is(rerr, syscall.EAGAIN) {
			z.giveBack() // nothing to read yet: wait without a buffer
			return false
		}
		return true
	})
	z.count(n)
	switch {
	case err != nil:
		z.giveBack()
		return err
	case rerr != nil:
		z.giveBack()
		return fmt.Errorf("read: %w", rerr)
	case n == 0:
		z.giveBack()
		return io.EOF
	}
	z.w += n
	return nil
}

// readInto reads from the socket into p, waiting for it to be readable.
func (z *idleReader) readInto(p []byte) (int, error) {
	var n int
	var rerr error
	err := z.rc.Read(func(fd uintptr) bool {
		n, rerr = rawRead(fd, p)
		return !errors.Is(rerr, syscall.EAGAIN)
	})
	z.count(n)
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, fmt.Errorf("read: %w", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (z *idleReader) count(n int) {
	if n > 0 {
		z.cnt.in.Add(uint64(n))
		z.cnt.cin.Add(uint64(n))
	}
}

// relayReader is what a relay reads client frames from: an idleReader on
// a plain socket, else the handshake's bufio.Reader.
func (c *clientConn) relayReader() (wire.BufferedReader, error) {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if cc, ok := nc.(countingConn); ok {
		z, err := newIdleReader(cc, c.rd)
		if err != nil {
			return nil, err
		}
		if z != nil {
			return z, nil
		}
	}
	return c.rd, nil
}

// rawRead reads without the runtime's syscall bookkeeping (see
// internal/netio); err is nil or the errno.
func rawRead(fd uintptr, p []byte) (int, error) {
	n, errno := netio.RawRead(fd, p)
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}
