package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func startupPacket(major, minor uint16, kv ...string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[4:], uint32(major)<<16|uint32(minor))
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestParseStartup(t *testing.T) {
	t.Parallel()
	pkt := startupPacket(3, 0, "user", "app_user.acme", "database", "mydb", "application_name", "x")
	body, err := ReadStartup(bytes.NewReader(pkt))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStartup(body)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != KindStartup || st.Major != 3 || st.Minor != 0 || st.Params["user"] != "app_user.acme" ||
		strings.Join(st.ParamOrder, ",") != "user,database,application_name" {
		t.Fatalf("got %+v", st)
	}
}

func TestParseStartupKinds(t *testing.T) {
	t.Parallel()
	req := func(code uint32, extra ...byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, code)
		return append(b, extra...)
	}
	cases := []struct {
		name string
		body []byte
		kind StartupKind
	}{
		{"ssl", req(sslRequestCode), KindSSLRequest},
		{"gss", req(gssEncRequestCode), KindGSSENCRequest},
		{"cancel", req(cancelRequestCode, 0, 0, 0, 7, 1, 2, 3, 4), KindCancel},
	}
	for _, c := range cases {
		st, err := ParseStartup(c.body)
		if err != nil || st.Kind != c.kind {
			t.Errorf("%s: %+v %v", c.name, st, err)
		}
	}
	st, _ := ParseStartup(req(cancelRequestCode, 0, 0, 0, 7, 1, 2, 3, 4))
	if st.ProcessID != 7 || !bytes.Equal(st.SecretKey, []byte{1, 2, 3, 4}) {
		t.Fatalf("cancel decoded as %+v", st)
	}
}

func TestParseStartupRejectsMalformed(t *testing.T) {
	t.Parallel()
	bad := map[string][]byte{
		"short":            {0, 3},
		"no terminator":    startupPacket(3, 0, "user", "x")[4 : len(startupPacket(3, 0, "user", "x"))-1],
		"name without val": append(binary.BigEndian.AppendUint32(nil, 3<<16), []byte("user\x00")...),
		"duplicate":        startupPacket(3, 0, "user", "a", "user", "b")[4:],
		"trailing":         append(startupPacket(3, 0, "user", "a")[4:], 'x'),
		"short cancel":     binary.BigEndian.AppendUint32(nil, cancelRequestCode),
	}
	for name, body := range bad {
		if _, err := ParseStartup(body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOtherProtocolVersionsDecodeVersionOnly(t *testing.T) {
	t.Parallel()
	st, err := ParseStartup(startupPacket(2, 0, "garbage")[4:])
	if err != nil || st.Major != 2 || st.Minor != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	st, err = ParseStartup(startupPacket(3, 2, "user", "u")[4:])
	if err != nil || st.Minor != 2 || st.Params["user"] != "u" {
		t.Fatalf("%+v %v", st, err)
	}
}

func TestReadStartupLimits(t *testing.T) {
	t.Parallel()
	huge := binary.BigEndian.AppendUint32(nil, MaxStartupPacketLen+5)
	if _, err := ReadStartup(bytes.NewReader(huge)); !errors.Is(err, ErrStartupTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	if _, err := ReadStartup(strings.NewReader("GET / HTTP/1.1\r\n\r\n")); !errors.Is(err, ErrStartupTooLarge) {
		t.Fatalf("http garbage: %v", err)
	}
	tiny := binary.BigEndian.AppendUint32(nil, 3)
	if _, err := ReadStartup(bytes.NewReader(tiny)); !errors.Is(err, ErrStartupTooLarge) {
		t.Fatalf("under minimum: %v", err)
	}
	if _, err := ReadStartup(bytes.NewReader(startupPacket(3, 0, "user")[:9])); err == nil || errors.Is(err, ErrStartupTooLarge) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestEncodeCancelRoundTrip(t *testing.T) {
	t.Parallel()
	pkt := EncodeCancel(42, []byte{9, 8, 7, 6})
	body, err := ReadStartup(bytes.NewReader(pkt))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStartup(body)
	if err != nil || st.Kind != KindCancel || st.ProcessID != 42 || !bytes.Equal(st.SecretKey, []byte{9, 8, 7, 6}) {
		t.Fatalf("%+v %v", st, err)
	}
}

func TestFrameReader(t *testing.T) {
	t.Parallel()
	var in bytes.Buffer
	in.Write([]byte{'Q', 0, 0, 0, 8, 'S', 'E', 'L', 0})
	in.Write([]byte{'X', 0, 0, 0, 4})
	fr := NewFrameReader(bufio.NewReader(&in), 100)
	typ, frame, err := fr.Next()
	if err != nil || typ != 'Q' || len(frame) != 9 {
		t.Fatalf("%q %v %v", typ, frame, err)
	}
	typ, frame, err = fr.Next()
	if err != nil || typ != 'X' || len(frame) != 5 {
		t.Fatalf("%q %v %v", typ, frame, err)
	}
	if _, _, err := fr.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	big := NewFrameReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0, 0, 1, 0})), 100)
	var tl *TooLargeError
	if _, _, err := big.Next(); !errors.As(err, &tl) || tl.Len != 252 {
		t.Fatalf("want TooLargeError, got %v", err)
	}
	bad := NewFrameReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 3})), 100)
	var bl *BadLengthError
	if _, _, err := bad.Next(); !errors.As(err, &bl) || bl.Len != 3 {
		t.Fatalf("length < 4: want BadLengthError, got %v", err)
	}
}

// TestFrameReaderAllocatesWhatArrives: a header that declares 800 MB and
// is followed by a few bytes costs about what arrived, not what was
// declared; a frame larger than the growth step still arrives whole.
func TestFrameReaderAllocatesWhatArrives(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	hdr := []byte{'Q', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], 800<<20)
	fr := NewFrameReader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("SELECT"))), 1<<30)
	if _, _, err := fr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated huge frame: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("reading a 6-byte body of a frame declared at 800 MB allocated %d bytes", grew)
	}
	body := bytes.Repeat([]byte("0123456789"), 50000) // 500 kB, past growStep
	frame := append([]byte{'d', 0, 0, 0, 0}, body...)
	binary.BigEndian.PutUint32(frame[1:], uint32(len(body)+4))
	fr = NewFrameReader(bufio.NewReaderSize(bytes.NewReader(frame), 4096), 1<<30)
	typ, got, err := fr.Next()
	if err != nil || typ != 'd' || !bytes.Equal(got, frame) {
		t.Fatalf("large frame: %q, %d bytes, %v", typ, len(got), err)
	}
}

// FuzzStartup feeds arbitrary bytes to the startup reader and decoder: they
// must never panic, never accept a packet over the limit, and a decoded
// StartupMessage must re-encode to the same parameters.
func FuzzStartup(f *testing.F) {
	f.Add(startupPacket(3, 0, "user", "app_user.acme", "database", "db"))
	f.Add(startupPacket(3, 1, "user", "u", "_pq_.x", "1"))
	f.Add(startupPacket(2, 0, "x"))
	f.Add(EncodeCancel(1, []byte{1, 2, 3, 4}))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadStartup(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(body) > MaxStartupPacketLen {
			t.Fatalf("accepted %d bytes", len(body)+4)
		}
		st, err := ParseStartup(body)
		if err != nil || st.Kind != KindStartup || st.Major != 3 {
			return
		}
		var kv []string
		for _, k := range st.ParamOrder {
			kv = append(kv, k, st.Params[k])
		}
		again := startupPacket(st.Major, st.Minor, kv...)
		if !bytes.Equal(again[4:], body) {
			t.Fatalf("round trip differs:\n%q\n%q", again[4:], body)
		}
	})
}

// FuzzFrameReader: arbitrary client byte streams never panic the frame
// reader and never yield a frame over the cap or with a wrong length.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{'Q', 0, 0, 0, 8, 'S', 'E', 'L', 0, 'X', 0, 0, 0, 4})
	f.Add([]byte{'P', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'Q', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bufio.NewReader(bytes.NewReader(data)), 64)
		for range 100 {
			_, frame, err := fr.Next()
			if err != nil {
				return
			}
			n := binary.BigEndian.Uint32(frame[1:5])
			if int(n)+1 != len(frame) || n-4 > 64 {
				t.Fatalf("bad frame %v", frame)
			}
		}
	})
}

// TestFrameReaderBudget: large buffers are charged to a shared budget as
// they grow; a message that does not fit fails with ErrBudget, and Close
// refunds what a reader held.
func TestFrameReaderBudget(t *testing.T) {
	t.Parallel()
	frame := func(n int) []byte {
		f := append([]byte{'Q', 0, 0, 0, 0}, bytes.Repeat([]byte("x"), n)...)
		binary.BigEndian.PutUint32(f[1:], uint32(n+4))
		return f
	}
	b := &Budget{Limit: 200 << 10}
	a := NewFrameReader(bufio.NewReader(bytes.NewReader(frame(150<<10))), 1<<30).WithBudget(b)
	if _, _, err := a.Next(); err != nil {
		t.Fatal(err)
	}
	if used := b.Used(); used < 150<<10 || used > 200<<10 {
		t.Fatalf("after a 150 kB message the budget holds %d", used)
	}
	c := NewFrameReader(bufio.NewReader(bytes.NewReader(frame(100<<10))), 1<<30).WithBudget(b)
	if _, _, err := c.Next(); !errors.Is(err, ErrBudget) {
		t.Fatalf("a message past the budget: %v", err)
	}
	c.Close()
	a.Close()
	if used := b.Used(); used != 0 {
		t.Fatalf("after Close the budget holds %d", used)
	}
	d := NewFrameReader(bufio.NewReader(bytes.NewReader(frame(100<<10))), 1<<30).WithBudget(b)
	if _, _, err := d.Next(); err != nil {
		t.Fatalf("after the refund: %v", err)
	}
	small := NewFrameReader(bufio.NewReader(bytes.NewReader(frame(100))), 1<<30).WithBudget(&Budget{Limit: 1})
	if _, _, err := small.Next(); err != nil {
		t.Fatalf("small messages are not charged: %v", err)
	}
}
