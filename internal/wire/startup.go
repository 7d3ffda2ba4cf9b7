package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxStartupPacketLen is PostgreSQL's limit on the startup packet body,
// without its length word (MAX_STARTUP_PACKET_LENGTH in pqcomm.h).
const MaxStartupPacketLen = 10000

// Request codes in the version field of a startup packet.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// StartupKind says which startup-phase packet was received.
type StartupKind int

// The startup-phase packets.
const (
	KindStartup StartupKind = iota
	KindSSLRequest
	KindGSSENCRequest
	KindCancel
)

// Startup is a decoded startup-phase packet.
type Startup struct {
	Kind StartupKind

	// KindStartup.
	Major, Minor uint16
	Params       map[string]string
	ParamOrder   []string // keys in the order the client sent them

	// KindCancel.
	ProcessID uint32
	SecretKey []byte
}

// ErrStartupTooLarge is returned for a startup packet over the limit.
var ErrStartupTooLarge = errors.New("invalid length of startup packet")

// ReadStartup reads one length-prefixed startup packet (without decoding
// it). The returned slice excludes the length word.
func ReadStartup(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read startup length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n-4 > MaxStartupPacketLen {
		return nil, ErrStartupTooLarge
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read startup body: %w", err)
	}
	return buf, nil
}

// ParseStartup decodes a startup packet body as returned by ReadStartup.
func ParseStartup(b []byte) (*Startup, error) {
	if len(b) < 4 {
		return nil, errors.New("startup packet too short")
	}
	code := binary.BigEndian.Uint32(b[:4])
	rest := b[4:]
	switch code {
	case sslRequestCode:
		return &Startup{Kind: KindSSLRequest}, nil
	case gssEncRequestCode:
		return &Startup{Kind: KindGSSENCRequest}, nil
	case cancelRequestCode:
		// Protocol 3.2 allows secret keys of up to 256 bytes.
		if len(rest) < 8 || len(rest) > 4+256 {
			return nil, errors.New("invalid cancel request length")
		}
		return &Startup{Kind: KindCancel, ProcessID: binary.BigEndian.Uint32(rest[:4]),
			SecretKey: bytes.Clone(rest[4:])}, nil
	}
	s := &Startup{Kind: KindStartup, Major: uint16(code >> 16), Minor: uint16(code), Params: map[string]string{}}
	if s.Major != 3 {
		// Parameters of other protocol versions have another layout; the
		// caller rejects the version, so there is nothing more to decode.
		return s, nil
	}
	if err := s.parseParams(rest); err != nil {
		return nil, err
	}
	return s, nil
}

// parseParams decodes name\0value\0 ... \0.
func (s *Startup) parseParams(b []byte) error {
	for {
		if len(b) == 0 {
			return errors.New("startup packet is missing its terminator")
		}
		if b[0] == 0 {
			if len(b) != 1 {
				return errors.New("trailing bytes after startup packet terminator")
			}
			return nil
		}
		name, rest, ok := cutCString(b)
		if !ok {
			return errors.New("unterminated parameter name in startup packet")
		}
		value, rest, ok := cutCString(rest)
		if !ok {
			return fmt.Errorf("missing value for startup parameter %q", name)
		}
		if _, dup := s.Params[name]; dup {
			return fmt.Errorf("duplicate startup parameter %q", name)
		}
		s.Params[name] = value
		s.ParamOrder = append(s.ParamOrder, name)
		b = rest
	}
}

func cutCString(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// EncodeCancel builds a CancelRequest packet for a server's key.
func EncodeCancel(pid uint32, secret []byte) []byte {
	b := make([]byte, 12+len(secret))
	binary.BigEndian.PutUint32(b[0:], uint32(len(b)))
	binary.BigEndian.PutUint32(b[4:], cancelRequestCode)
	binary.BigEndian.PutUint32(b[8:], pid)
	copy(b[12:], secret)
	return b
}
