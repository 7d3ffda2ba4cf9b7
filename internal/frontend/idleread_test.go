package frontend

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func newTestIdleReader(t *testing.T, server net.Conn, pre []byte) (*idleReader, *atomic.Uint64) {
	t.Helper()
	var in, cin, out, cout atomic.Uint64
	cc := countingConn{Conn: server, in: &in, out: &out, cin: &cin, cout: &cout}
	rd := bufio.NewReaderSize(io.MultiReader(bytesReader(pre)), clientReadBuffer)
	if len(pre) > 0 {
		if _, err := rd.Peek(len(pre)); err != nil {
			t.Fatal(err)
		}
	}
	z, err := newIdleReader(cc, rd)
	if err != nil || z == nil {
		t.Fatalf("idle reader: %v %v", z, err)
	}
	return z, &in
}

type bytesReader []byte

func (b bytesReader) Read(p []byte) (int, error) {
	if len(b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b)
	return n, nil
}

// TestIdleReaderBorrowsOnlyWhileBuffered: bytes the handshake buffered
// come first, a drained reader holds no buffer, partial frames are
// completed across reads, large reads bypass the buffer, and the byte
// counters see every socket byte.
func TestIdleReaderBorrowsOnlyWhileBuffered(t *testing.T) {
	client, server := tcpPair(t)
	z, in := newTestIdleReader(t, server, []byte("pre"))
	if z.Buffered() != 3 || z.buf == nil {
		t.Fatalf("handshake bytes not carried over: %d", z.Buffered())
	}
	p := make([]byte, 3)
	if _, err := io.ReadFull(z, p); err != nil || string(p) != "pre" {
		t.Fatalf("%q %v", p, err)
	}
	if z.buf != nil {
		t.Fatal("a drained reader keeps its buffer")
	}
	// A frame header arriving in two pieces: the first is buffered (and
	// the buffer kept) while the reader waits for the rest.
	if _, err := client.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if hdr, err := z.Peek(2); err != nil || string(hdr) != "ab" {
		t.Fatalf("peek %q %v", hdr, err)
	}
	go func() { _, _ = client.Write([]byte("cdefg")) }()
	hdr, err := z.Peek(5)
	if err != nil || string(hdr) != "abcde" {
		t.Fatalf("peek %q %v", hdr, err)
	}
	rest := make([]byte, 7)
	if _, err := io.ReadFull(z, rest); err != nil || string(rest) != "abcdefg" {
		t.Fatalf("%q %v", rest, err)
	}
	if z.buf != nil || z.Buffered() != 0 {
		t.Fatal("buffer kept after draining")
	}
	// A read of a buffer's size or more goes straight into the caller's slice.
	big := make([]byte, 3*clientReadBuffer)
	for i := range big {
		big[i] = byte(i)
	}
	go func() { _, _ = client.Write(big) }()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(z, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != big[i] {
			t.Fatalf("byte %d differs", i)
		}
	}
	if want := uint64(3*clientReadBuffer + 7); in.Load() != want {
		t.Fatalf("counted %d bytes in, want %d", in.Load(), want)
	}
	if z.buf != nil {
		t.Fatal("buffer kept after a direct read")
	}
}

// TestIdleReaderDeadlineAndClose: a read deadline ends a wait with a
// timeout (idle timeouts rely on it), the reader stays usable, and
// closing the socket ends a wait.
func TestIdleReaderDeadlineAndClose(t *testing.T) {
	client, server := tcpPair(t)
	z, _ := newTestIdleReader(t, server, nil)
	_ = server.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := z.Peek(5)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
	if z.buf != nil {
		t.Fatal("buffer kept through a timed-out wait")
	}
	_ = server.SetReadDeadline(time.Time{})
	_, _ = client.Write([]byte("hello"))
	if hdr, err := z.Peek(5); err != nil || string(hdr) != "hello" {
		t.Fatalf("after a timeout: %q %v", hdr, err)
	}
	if _, err := z.Read(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := z.Peek(1); done <- err }()
	server.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("close did not end the wait")
	}
}

// TestIdleReaderEOF: the peer closing gives io.EOF, after the bytes it sent.
func TestIdleReaderEOF(t *testing.T) {
	client, server := tcpPair(t)
	z, _ := newTestIdleReader(t, server, nil)
	_, _ = client.Write([]byte("xy"))
	client.Close()
	b, err := io.ReadAll(z)
	if err != nil || string(b) != "xy" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := z.Peek(1); !errors.Is(err, io.EOF) {
		t.Fatalf("peek after EOF: %v", err)
	}
}
