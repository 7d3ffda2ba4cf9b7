package wire

import (
	"bytes"
	"encoding/binary"
)

// Build encodes one message of type typ whose body is parts, concatenated.
// The result is a fresh slice the caller owns.
func Build(typ byte, parts ...[]byte) []byte {
	n := 4
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 5, n+1)
	out[0] = typ
	binary.BigEndian.PutUint32(out[1:], uint32(n))
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// CString splits b at its first NUL: the string before it and the bytes
// after it; ok is false when b has no NUL. The rest aliases b.
func CString(b []byte) (s string, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}
