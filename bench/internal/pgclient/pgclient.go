// Package pgclient is a minimal PostgreSQL wire-protocol client for the
// benchmark load generators in bench/: plaintext TCP, SCRAM-SHA-256 (or
// cleartext/trust) login, and one-statement round trips over the simple or
// the extended protocol. It is small on purpose: thousands of idle
// connections cost a socket and a 4 KiB read buffer each, and SCRAM's
// PBKDF2 result is cached per (password, salt, iterations), so opening
// 10,000 connections does not burn the client's CPU on key derivation.
//
// It is a benchmark tool, not a driver: no TLS, no COPY, no cancellation, and
// only text results.
package pgclient

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Config says where and as whom to connect.
type Config struct {
	Addr     string // host:port
	User     string
	Password string
	Database string
	// Timeout bounds dialing and the login (0: 30 s).
	Timeout time.Duration
}

// Error is an ErrorResponse from the server.
type Error struct {
	Severity, Code, Message string
}

func (e *Error) Error() string { return e.Severity + " " + e.Code + ": " + e.Message }

// Conn is one client connection. It is not safe for concurrent use.
type Conn struct {
	nc  net.Conn
	r   *bufio.Reader
	out []byte
	// BackendPID is the process id from BackendKeyData (the proxy's, or
	// PostgreSQL's on a direct connection).
	BackendPID uint32
	prepared   map[string]bool
}

// Connect dials and logs in, and returns once the server is ready for a
// query.
func Connect(cfg Config) (*Conn, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	nc, err := net.DialTimeout("tcp", cfg.Addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &Conn{nc: nc, r: bufio.NewReaderSize(nc, 4096), prepared: map[string]bool{}}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if err := c.login(cfg); err != nil {
		nc.Close()
		return nil, fmt.Errorf("login as %s: %w", cfg.User, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// Close sends Terminate and closes the socket.
func (c *Conn) Close() error {
	c.out = append(c.out[:0], 'X', 0, 0, 0, 4)
	_, _ = c.nc.Write(c.out)
	return c.nc.Close()
}

// SetDeadline sets the socket deadline for the following calls.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

func (c *Conn) login(cfg Config) error {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, kv := range [][2]string{{"user", cfg.User}, {"database", cfg.Database}, {"application_name", "multigres-bench"}} {
		b = append(append(append(append(b, kv[0]...), 0), kv[1]...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	var sc *scram
	for {
		typ, body, err := c.readMsg()
		if err != nil {
			return err
		}
		switch typ {
		case 'R':
			if len(body) < 4 {
				return errors.New("short authentication message")
			}
			code := binary.BigEndian.Uint32(body)
			switch code {
			case 0: // AuthenticationOk
			case 3: // cleartext
				if err := c.send('p', append([]byte(cfg.Password), 0)); err != nil {
					return err
				}
			case 10: // SASL
				if !strings.Contains(string(body[4:]), "SCRAM-SHA-256\x00") {
					return fmt.Errorf("server offers no SCRAM-SHA-256: %q", body[4:])
				}
				sc = newSCRAM(cfg.Password)
				first := sc.clientFirst()
				m := append([]byte("SCRAM-SHA-256\x00"), 0, 0, 0, 0)
				binary.BigEndian.PutUint32(m[len(m)-4:], uint32(len(first)))
				if err := c.send('p', append(m, first...)); err != nil {
					return err
				}
			case 11: // SASLContinue
				if sc == nil {
					return errors.New("SASLContinue before SASL")
				}
				final, err := sc.clientFinal(string(body[4:]))
				if err != nil {
					return err
				}
				if err := c.send('p', []byte(final)); err != nil {
					return err
				}
			case 12: // SASLFinal
				if sc == nil || !sc.verifyServer(string(body[4:])) {
					return errors.New("SCRAM server signature does not verify")
				}
			default:
				return fmt.Errorf("unsupported authentication request %d", code)
			}
		case 'K':
			if len(body) >= 4 {
				c.BackendPID = binary.BigEndian.Uint32(body)
			}
		case 'S', 'N':
		case 'E':
			return parseError(body)
		case 'Z':
			return nil
		default:
			return fmt.Errorf("unexpected message %q during login", typ)
		}
	}
}

func (c *Conn) send(typ byte, body []byte) error {
	c.out = append(c.out[:0], typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(c.out[1:], uint32(4+len(body)))
	c.out = append(c.out, body...)
	_, err := c.nc.Write(c.out)
	return err
}

func (c *Conn) readMsg() (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > 64<<20 {
		return 0, nil, fmt.Errorf("bad message length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// Result is the first row of a statement's result (text format; a NULL is
// nil) and how many rows it returned.
type Result struct {
	Row  [][]byte
	Rows int
}

// Simple runs sql with the simple query protocol.
func (c *Conn) Simple(sql string) (Result, error) {
	if err := c.send('Q', append([]byte(sql), 0)); err != nil {
		return Result{}, err
	}
	return c.readResult()
}

// Extended runs sql with Parse/Bind/Execute/Sync and text parameters. With
// name == "" the statement is unnamed and parsed every time (pgbench -M
// extended); with a name it is parsed once per connection and then only
// bound (pgbench -M prepared).
func (c *Conn) Extended(name, sql string, args ...string) (Result, error) {
	c.out = c.out[:0]
	if name == "" || !c.prepared[name] {
		c.out = msg(c.out, 'P', func(b []byte) []byte {
			b = append(append(b, name...), 0)
			b = append(append(b, sql...), 0)
			return append(b, 0, 0)
		})
	}
	c.out = msg(c.out, 'B', func(b []byte) []byte {
		b = append(b, 0) // portal
		b = append(append(b, name...), 0)
		b = append(b, 0, 0) // parameter formats: all text
		b = binary.BigEndian.AppendUint16(b, uint16(len(args)))
		for _, a := range args {
			b = binary.BigEndian.AppendUint32(b, uint32(len(a)))
			b = append(b, a...)
		}
		return append(b, 0, 0) // result formats: all text
	})
	c.out = msg(c.out, 'E', func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0) })
	c.out = append(c.out, 'S', 0, 0, 0, 4)
	if _, err := c.nc.Write(c.out); err != nil {
		return Result{}, err
	}
	res, err := c.readResult()
	if err == nil && name != "" {
		c.prepared[name] = true
	}
	return res, err
}

func msg(b []byte, typ byte, body func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, typ, 0, 0, 0, 0)
	b = body(b)
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-1))
	return b
}

// readResult reads up to ReadyForQuery; the first ErrorResponse is returned
// after it.
func (c *Conn) readResult() (Result, error) {
	var res Result
	var firstErr error
	for {
		typ, body, err := c.readMsg()
		if err != nil {
			return res, err
		}
		switch typ {
		case 'D':
			if res.Rows == 0 {
				res.Row = parseRow(body)
			}
			res.Rows++
		case 'E':
			if firstErr == nil {
				firstErr = parseError(body)
			}
		case 'Z':
			return res, firstErr
		}
	}
}

func parseRow(b []byte) [][]byte {
	if len(b) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	row := make([][]byte, 0, n)
	for i := 0; i < n && len(b) >= 4; i++ {
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l < 0 || int(l) > len(b) {
			row = append(row, nil)
			continue
		}
		row = append(row, b[:l])
		b = b[l:]
	}
	return row
}

func parseError(b []byte) error {
	e := &Error{}
	for len(b) > 1 {
		f := b[0]
		i := strings.IndexByte(string(b[1:]), 0)
		if i < 0 {
			break
		}
		v := string(b[1 : 1+i])
		switch f {
		case 'S':
			e.Severity = v
		case 'C':
			e.Code = v
		case 'M':
			e.Message = v
		}
		b = b[2+i:]
	}
	return e
}

// SCRAM-SHA-256 (RFC 5802/7677) without channel binding. The salted
// password depends only on (password, salt, iterations), which are the same
// for every login of one role: it is computed once per process.
type scram struct {
	password, nonce, clientFirstBare, authMessage string
	salted                                        []byte
}

var (
	saltedMu    sync.Mutex
	saltedCache = map[string][]byte{}
)

func newSCRAM(password string) *scram {
	var n [18]byte
	_, _ = rand.Read(n[:])
	return &scram{password: password, nonce: base64.RawStdEncoding.EncodeToString(n[:])}
}

func (s *scram) clientFirst() string {
	s.clientFirstBare = "n=,r=" + s.nonce
	return "n,," + s.clientFirstBare
}

func (s *scram) clientFinal(serverFirst string) (string, error) {
	var nonce, salt64 string
	iter := 0
	for _, part := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(part, "r="):
			nonce = part[2:]
		case strings.HasPrefix(part, "s="):
			salt64 = part[2:]
		case strings.HasPrefix(part, "i="):
			if _, err := fmt.Sscanf(part[2:], "%d", &iter); err != nil {
				return "", fmt.Errorf("bad SCRAM iteration count %q", part)
			}
		}
	}
	if !strings.HasPrefix(nonce, s.nonce) || iter <= 0 {
		return "", fmt.Errorf("bad SCRAM server-first-message %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("bad SCRAM salt: %w", err)
	}
	key := fmt.Sprintf("%s\x00%s\x00%d", s.password, salt64, iter)
	saltedMu.Lock()
	s.salted = saltedCache[key]
	saltedMu.Unlock()
	if s.salted == nil {
		s.salted, err = pbkdf2.Key(sha256.New, s.password, salt, iter, 32)
		if err != nil {
			return "", err
		}
		saltedMu.Lock()
		saltedCache[key] = s.salted
		saltedMu.Unlock()
	}
	withoutProof := "c=biws,r=" + nonce
	s.authMessage = s.clientFirstBare + "," + serverFirst + "," + withoutProof
	clientKey := hmacSHA256(s.salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	sig := hmacSHA256(storedKey[:], s.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func (s *scram) verifyServer(serverFinal string) bool {
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return false
	}
	serverKey := hmacSHA256(s.salted, "Server Key")
	return hmac.Equal(got, hmacSHA256(serverKey, s.authMessage))
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
