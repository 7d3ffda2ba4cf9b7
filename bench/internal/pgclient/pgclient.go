// Package pgclient is a minimal PostgreSQL wire-protocol client for the
// benchmark load generators in bench/: plaintext TCP, SCRAM-SHA-256 (or
// cleartext/trust) login, and one-statement round trips over the simple or
// the extended protocol. It is small on purpose: thousands of idle
// connections cost a socket and a 4 KiB read buffer each. SCRAM is
// internal/auth's client; its PBKDF2 work is done once per (password, salt,
// iterations) and the derived keys are reused (see scramClient), so opening
// 10,000 connections does not burn the client's CPU on key derivation.
//
// It is a benchmark tool, not a driver: no TLS, no COPY, no cancellation, and
// only text results.
package pgclient

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/auth"
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
	c, err := connect(cfg)
	if errors.Is(err, auth.ErrPassthroughMismatch) {
		// The server challenged with another salt or iteration count than
		// the one remembered for it (another role with this password, or
		// a changed verifier). The new challenge is remembered now: log
		// in again, once.
		c, err = connect(cfg)
	}
	return c, err
}

func connect(cfg Config) (*Conn, error) {
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
	var (
		sc        *auth.SCRAMClient
		challenge scramParams // from the server-first-message
		scramDone bool        // server signature verified
	)
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
				if sc != nil && !scramDone {
					return errors.New("AuthenticationOk before the SCRAM exchange completed")
				}
			case 3: // cleartext
				if err := c.send('p', append([]byte(cfg.Password), 0)); err != nil {
					return err
				}
			case 10: // SASL
				if !strings.Contains(string(body[4:]), auth.MechSCRAMSHA256+"\x00") {
					return fmt.Errorf("server offers no SCRAM-SHA-256: %q", body[4:])
				}
				sc = scramClient(cfg)
				scramDone = false
				first := sc.ClientFirst()
				m := append([]byte(sc.Mechanism()+"\x00"), 0, 0, 0, 0)
				binary.BigEndian.PutUint32(m[len(m)-4:], uint32(len(first)))
				if err := c.send('p', append(m, first...)); err != nil {
					return err
				}
			case 11: // SASLContinue
				if sc == nil {
					return errors.New("SASLContinue before SASL")
				}
				var ok bool
				challenge, ok = parseChallenge(body[4:])
				final, err := sc.ServerFirst(body[4:])
				if err != nil {
					if ok && errors.Is(err, auth.ErrPassthroughMismatch) {
						rememberChallenge(cfg, challenge) // for Connect's retry
					}
					return err
				}
				if err := c.send('p', final); err != nil {
					return err
				}
			case 12: // SASLFinal
				if sc == nil {
					return errors.New("SASLFinal before SASL")
				}
				// ServerFinal verifies the server signature.
				if err := sc.ServerFinal(body[4:]); err != nil {
					return err
				}
				scramDone = true
				if challenge.iterations > 0 {
					rememberChallenge(cfg, challenge)
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

// SCRAM-SHA-256 is internal/auth's SCRAMClient. Its keys depend only on
// (password, salt, iterations), which are the same for every login of one
// role (and, through multigres, for every tenant login of one role), so they
// are derived once per process with auth.DeriveSCRAMKeys and every later
// login is a NewSCRAMClientFromKeys client. The salt and iteration count
// are only known from the server-first-message, after the client-first one
// is sent, so the challenge each server last sent for a password is
// remembered too: the first login of a password on a server runs a password
// client (PBKDF2 once), the following ones reuse the keys. If a server then
// challenges with another salt (another role with the same password, a
// changed verifier), the keys client fails with auth.ErrPassthroughMismatch
// and Connect logs in once more with the new challenge's keys.

// scramParams is a server's SCRAM challenge: the verifier's salt and
// iteration count.
type scramParams struct {
	salt       []byte
	iterations int
}

// scramKeys are the keys derived for one (password, salt, iterations), once.
type scramKeys struct {
	once                 sync.Once
	clientKey, serverKey []byte
	err                  error
}

var scramCache = struct {
	sync.Mutex
	// challenges: last successful (or mismatching) challenge per
	// addr+password+user, and per addr+password for users not seen yet
	// (multigres tenants "role.tenant" share their role's verifier).
	challenges map[string]scramParams
	keys       map[string]*scramKeys // password+salt+iterations
}{challenges: map[string]scramParams{}, keys: map[string]*scramKeys{}}

// challengeKeys returns the challenges keys of cfg's user and of any user
// with cfg's password on cfg's server.
func challengeKeys(cfg Config) (userKey, sharedKey string) {
	sharedKey = cfg.Addr + "\x00" + cfg.Password
	return sharedKey + "\x00" + cfg.User, sharedKey
}

// scramClient returns the SCRAM client for one login: a keys client when a
// challenge for this server and password is known, else a password client.
func scramClient(cfg Config) *auth.SCRAMClient {
	userKey, sharedKey := challengeKeys(cfg)
	scramCache.Lock()
	p, ok := scramCache.challenges[userKey]
	if !ok {
		p, ok = scramCache.challenges[sharedKey]
	}
	scramCache.Unlock()
	if !ok {
		return auth.NewSCRAMClient(cfg.Password)
	}
	ck, sk, err := deriveKeys(cfg.Password, p)
	if err != nil {
		// The password client reports the problem (bad iteration count).
		return auth.NewSCRAMClient(cfg.Password)
	}
	return auth.NewSCRAMClientFromKeys(ck, sk, p.salt, p.iterations)
}

// deriveKeys returns the keys for (password, p), running PBKDF2 only the
// first time; concurrent callers wait for that one derivation.
func deriveKeys(password string, p scramParams) (clientKey, serverKey []byte, err error) {
	id := password + "\x00" + string(p.salt) + "\x00" + strconv.Itoa(p.iterations)
	scramCache.Lock()
	k := scramCache.keys[id]
	if k == nil {
		k = &scramKeys{}
		scramCache.keys[id] = k
	}
	scramCache.Unlock()
	k.once.Do(func() { k.clientKey, k.serverKey, k.err = auth.DeriveSCRAMKeys(password, p.salt, p.iterations) })
	return k.clientKey, k.serverKey, k.err
}

func rememberChallenge(cfg Config, p scramParams) {
	userKey, sharedKey := challengeKeys(cfg)
	scramCache.Lock()
	scramCache.challenges[userKey] = p
	scramCache.challenges[sharedKey] = p
	scramCache.Unlock()
}

// parseChallenge reads the salt and iteration count of a
// server-first-message ("r=...,s=...,i=..."), only to key the caches:
// auth.SCRAMClient validates the message.
func parseChallenge(serverFirst []byte) (scramParams, bool) {
	var p scramParams
	for _, attr := range strings.Split(string(serverFirst), ",") {
		if v, ok := strings.CutPrefix(attr, "s="); ok {
			salt, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return scramParams{}, false
			}
			p.salt = salt
		} else if v, ok := strings.CutPrefix(attr, "i="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return scramParams{}, false
			}
			p.iterations = n
		}
	}
	if len(p.salt) == 0 || p.iterations < 1 || p.iterations > auth.MaxIterations {
		return scramParams{}, false
	}
	return p, true
}
