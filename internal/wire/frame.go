package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// FrameReader reads whole protocol messages (type byte, length, body)
// without decoding them, so the proxy can forward frames it does not need
// to inspect. The returned frame is valid until the next call.
type FrameReader struct {
	r      BufferedReader
	maxLen int64
	buf    []byte
	budget *Budget
	held   int64 // bytes of buf charged to budget
}

// Budget bounds the memory that the frame buffers of many readers hold
// together: a buffer beyond growStep is charged as it grows and refunded
// when it is dropped or the reader is closed. The zero value, or nil,
// bounds nothing.
type Budget struct {
	Limit int64 // 0: no bound
	used  atomic.Int64
}

// Used reports the bytes charged now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

func (b *Budget) take(n int64) bool {
	if b == nil || b.Limit <= 0 {
		return true
	}
	if b.used.Add(n) > b.Limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *Budget) give(n int64) {
	if b != nil && b.Limit > 0 {
		b.used.Add(-n)
	}
}

// ErrBudget means a message did not fit in what the budget had left.
var ErrBudget = errors.New("message buffers are at their memory limit")

// WithBudget charges this reader's large buffers to b; Close refunds them.
func (f *FrameReader) WithBudget(b *Budget) *FrameReader {
	f.budget = b
	return f
}

// Close gives back the reader's buffer and its charge; the reader must not
// be used afterwards.
func (f *FrameReader) Close() {
	f.budget.give(f.held)
	f.held, f.buf = 0, nil
}

// setBuf replaces the buffer, settling its charge: growth is charged (and
// may be refused), a smaller buffer refunds the difference.
func (f *FrameReader) setBuf(b []byte) bool {
	charge := int64(0)
	if cap(b) > growStep {
		charge = int64(cap(b))
	}
	if d := charge - f.held; d > 0 && !f.budget.take(d) {
		return false
	} else if d < 0 {
		f.budget.give(-d)
	}
	f.held, f.buf = charge, b
	return true
}

// BufferedReader is what a FrameReader reads from: a *bufio.Reader, or a
// reader that holds a buffer only while it has unread bytes.
type BufferedReader interface {
	io.Reader
	// Peek returns the next n bytes without consuming them.
	Peek(n int) ([]byte, error)
	// Buffered reports the bytes that can be read without waiting.
	Buffered() int
}

var _ BufferedReader = (*bufio.Reader)(nil)

// NewFrameReader wraps r. maxBody caps the body length of one message
// (max_message_size); larger messages are a protocol violation.
func NewFrameReader(r BufferedReader, maxBody int64) *FrameReader {
	return &FrameReader{r: r, maxLen: maxBody}
}

// TooLargeError reports a message over the configured size.
type TooLargeError struct {
	Type byte
	Len  int64
	Max  int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message of type %q with %d bytes exceeds max_message_size %d", e.Type, e.Len, e.Max)
}

// Next returns the next message: its type and the whole frame including the
// 5-byte header.
func (f *FrameReader) Next() (byte, []byte, error) {
	hdr, err := f.r.Peek(5)
	if err != nil {
		if len(hdr) == 0 && err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("read frame header: %w", err)
	}
	// Drop a buffer left behind by one huge message, so an idle connection
	// does not pin it.
	if cap(f.buf) > 1<<20 {
		f.setBuf(nil)
	}
	typ := hdr[0]
	n := int64(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return 0, nil, &BadLengthError{Type: typ, Len: n}
	}
	if n-4 > f.maxLen {
		return 0, nil, &TooLargeError{Type: typ, Len: n - 4, Max: f.maxLen}
	}
	if err := f.readBody(int(n) + 1); err != nil {
		return 0, nil, fmt.Errorf("read frame body: %w", err)
	}
	return typ, f.buf, nil
}

// growStep is the most a frame's buffer grows ahead of the bytes that
// arrived: a header declaring a gigabyte costs nothing until the gigabyte
// comes.
const growStep = 8 << 10

// readBody reads a whole frame of total bytes into f.buf. Below growStep,
// or when the buffer is already large enough, it reads at once; above, the
// buffer grows as the bytes arrive (at most doubling what was received),
// so memory follows what the peer actually sent, not what it declared.
func (f *FrameReader) readBody(total int) error {
	if total <= growStep || cap(f.buf) >= total {
		if cap(f.buf) < total {
			f.setBuf(make([]byte, total)) // at most growStep: never refused
		}
		f.buf = f.buf[:total]
		_, err := io.ReadFull(f.r, f.buf)
		return err
	}
	if cap(f.buf) < growStep {
		f.setBuf(make([]byte, 0, growStep))
	}
	f.buf = f.buf[:0]
	for len(f.buf) < total {
		if len(f.buf) == cap(f.buf) {
			next := make([]byte, len(f.buf), min(2*cap(f.buf), total))
			copy(next, f.buf)
			if !f.setBuf(next) {
				return ErrBudget
			}
		}
		n, err := f.r.Read(f.buf[len(f.buf):cap(f.buf)])
		f.buf = f.buf[:len(f.buf)+n]
		if err != nil && len(f.buf) < total {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// BadLengthError reports a length field below 4, which no message has: a
// protocol violation.
type BadLengthError struct {
	Type byte
	Len  int64
}

func (e *BadLengthError) Error() string {
	return fmt.Sprintf("invalid message length %d for message type %q", e.Len, e.Type)
}

// Buffered reports whether more input is already buffered, which lets the
// writer side delay a flush while a pipeline is still arriving.
func (f *FrameReader) Buffered() int { return f.r.Buffered() }
