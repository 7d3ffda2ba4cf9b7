package netio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func pair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return Wrap(a), Wrap(b)
}

// TestWrapRoundTrip: a write far larger than the socket buffers completes
// (Write waits for writability in between), the reader gets every byte in
// order, and a closed peer reads as io.EOF.
func TestWrapRoundTrip(t *testing.T) {
	a, b := pair(t)
	if _, ok := a.(*Conn); !ok {
		t.Fatalf("Wrap of a TCP connection is %T", a)
	}
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := a.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		a.Close()
		errc <- err
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
}

// TestWrapDeadlineAndClose: deadlines and Close reach a waiting Read, as
// with net.Conn.
func TestWrapDeadlineAndClose(t *testing.T) {
	a, b := pair(t)
	_ = b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := b.Read(make([]byte, 4))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
	_ = b.SetReadDeadline(time.Time{})
	if _, err := a.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if _, err := io.ReadFull(b, p); err != nil || string(p) != "ping" {
		t.Fatalf("%q %v", p, err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Read(p); done <- err }()
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the read")
	}
	// Writing to a peer that closed fails (EPIPE or ECONNRESET) instead
	// of hanging.
	var werr error
	for range 100 {
		if _, werr = a.Write(make([]byte, 64<<10)); werr != nil {
			break
		}
	}
	if werr == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
}

// TestWrapNonSocket: anything that is not a socket is returned as it is.
func TestWrapNonSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a pipe was wrapped")
	}
}
