package frontend

import (
	"bufio"
	"io"
	"sync"
)

// An idle client connection should cost little memory: transaction pooling
// is for thousands of mostly idle clients. So a client's write buffer is
// borrowed from a pool when something is written and given back at each
// flush, so is the transaction relay's buffer for server frames, and its
// read buffer is small (frames larger than it are read
// straight into the frame buffer; see wire.FrameReader).

// clientReadBuffer is the size of a client connection's read buffer: enough
// for the usual query or Bind/Execute/Sync batch in one read.
const clientReadBuffer = 1 << 10

// clientWriteBuffer is the size of the write buffers lent to clients.
const clientWriteBuffer = 8 << 10

var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientWriteBuffer) }}

// clientWriter is a bufio.Writer borrowed only while it holds data. Its
// callers serialise access (clientConn.wmu).
type clientWriter struct {
	dst io.Writer
	bw  *bufio.Writer
}

func newClientWriter(dst io.Writer) *clientWriter { return &clientWriter{dst: dst} }

func (w *clientWriter) buf() *bufio.Writer {
	if w.bw == nil {
		w.bw = writeBufs.Get().(*bufio.Writer)
		w.bw.Reset(w.dst)
	}
	return w.bw
}

// AvailableBuffer is bufio.Writer's: an empty slice to encode into.
func (w *clientWriter) AvailableBuffer() []byte { return w.buf().AvailableBuffer() }

func (w *clientWriter) Write(p []byte) (int, error) { return w.buf().Write(p) }

// Flush writes what is buffered and gives the buffer back.
func (w *clientWriter) Flush() error {
	if w.bw == nil {
		return nil
	}
	err := w.bw.Flush()
	if err == nil {
		w.bw.Reset(nil)
		writeBufs.Put(w.bw)
		w.bw = nil
	}
	return err
}

// Reset points the writer at dst, dropping anything unflushed.
func (w *clientWriter) Reset(dst io.Writer) {
	w.dst = dst
	if w.bw != nil {
		w.bw.Reset(dst)
	}
}

// outBufs lends the transaction relay the buffer it assembles a client
// message's server frames in (txstate.Machine.ToServer), from a client
// message until the client has nothing more buffered.
var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

func borrowOut() []byte { return (*outBufs.Get().(*[]byte))[:0] }

// returnOut gives b back, unless a huge message grew it.
func returnOut(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	b = b[:0]
	outBufs.Put(&b)
}
