package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// FrameReader reads whole protocol messages (type byte, length, body)
// without decoding them, so the proxy can forward frames it does not need
// to inspect. The returned frame is valid until the next call.
type FrameReader struct {
	r      BufferedReader
	maxLen int64
	buf    []byte
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
		f.buf = nil
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
			f.buf = make([]byte, total)
		}
		f.buf = f.buf[:total]
		_, err := io.ReadFull(f.r, f.buf)
		return err
	}
	if cap(f.buf) < growStep {
		f.buf = make([]byte, 0, growStep)
	}
	f.buf = f.buf[:0]
	for len(f.buf) < total {
		if len(f.buf) == cap(f.buf) {
			next := make([]byte, len(f.buf), min(2*cap(f.buf), total))
			copy(next, f.buf)
			f.buf = next
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
