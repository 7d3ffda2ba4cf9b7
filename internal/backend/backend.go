// Package backend opens and speaks to upstream PostgreSQL connections.
//
// multigres does its own upstream handshake instead of pgconn's because it
// must log in with SCRAM passthrough: it holds no plaintext password, only
// the ClientKey recovered from the client's proof (see internal/auth), and
// pgconn has no hook for that. After the handshake a Conn is a byte pipe
// with a frame reader, which is what the proxy's hot path needs.
package backend

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/auth"
	"github.com/multigres-proxy/multigres/internal/netio"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Credentials are what the proxy can use to log in upstream as a role, in
// order of preference: SCRAM passthrough keys, a plaintext password, an md5
// hash.
type Credentials struct {
	ClientKey, ServerKey []byte
	Salt                 []byte
	Iterations           int
	Password             string
	MD5                  string // "md5..." hash, usable for md5 auth only
}

func (c *Credentials) hasKeys() bool { return len(c.ClientKey) > 0 && len(c.ServerKey) > 0 }

// DialOptions describe one upstream connection.
type DialOptions struct {
	Addr      string
	TLSMode   string      // disable | prefer | require | verify-full
	TLSConfig *tls.Config // used for require/prefer/verify-full; ServerName set by caller
	// Params is the startup packet, user and database included, in order.
	Params      []Param
	Credentials Credentials
	MaxBodyLen  int64
}

// Param is one startup parameter.
type Param struct{ Name, Value string }

// Conn is an authenticated upstream connection.
type Conn struct {
	net.Conn
	Frames    *wire.FrameReader
	W         *bufio.Writer
	Params    []Param // ParameterStatus values at startup, in order
	PID       uint32
	SecretKey []byte
	TxStatus  byte
	addr      string
}

// Quiet reports whether an idle connection has nothing unread: no
// buffered frame and a silent socket (see netio.Silent).
func (c *Conn) Quiet() bool { return c.Frames.Buffered() == 0 && netio.Silent(c.Conn) }

// Addr returns the upstream address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// Dial connects, negotiates TLS, authenticates and reads up to the first
// ReadyForQuery. ctx bounds the whole handshake.
func Dial(ctx context.Context, o DialOptions) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial upstream: %w", err)
	}
	nc := netio.Wrap(raw)
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c, err := handshake(nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func handshake(nc net.Conn, o DialOptions) (*Conn, error) {
	nc, err := negotiateTLS(nc, o)
	if err != nil {
		return nil, err
	}
	maxBody := o.MaxBodyLen
	if maxBody <= 0 {
		maxBody = 1 << 30
	}
	c := &Conn{Conn: nc, Frames: wire.NewFrameReader(bufio.NewReaderSize(nc, 16<<10), maxBody),
		W: bufio.NewWriterSize(nc, 16<<10), addr: o.Addr}
	if _, err := c.W.Write(encodeStartup(o.Params)); err != nil {
		return nil, fmt.Errorf("send startup: %w", err)
	}
	if err := c.W.Flush(); err != nil {
		return nil, fmt.Errorf("send startup: %w", err)
	}
	if err := c.authenticate(o); err != nil {
		return nil, err
	}
	if err := c.readUntilReady(); err != nil {
		return nil, err
	}
	return c, nil
}

func negotiateTLS(nc net.Conn, o DialOptions) (net.Conn, error) {
	if o.TLSMode == "" || o.TLSMode == "disable" {
		return nc, nil
	}
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:], 8)
	binary.BigEndian.PutUint32(req[4:], 80877103)
	if _, err := nc.Write(req[:]); err != nil {
		return nil, fmt.Errorf("send SSLRequest: %w", err)
	}
	var resp [1]byte
	if _, err := nc.Read(resp[:]); err != nil {
		return nil, fmt.Errorf("read SSLRequest answer: %w", err)
	}
	switch resp[0] {
	case wire.SSLAccepted:
		cfg := o.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // "require" does not verify, as in libpq
		}
		tc := tls.Client(nc, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("upstream TLS handshake: %w", err)
		}
		return tc, nil
	case wire.SSLRefused:
		if o.TLSMode == "prefer" {
			return nc, nil
		}
		return nil, fmt.Errorf("upstream refused TLS but server_tls_mode is %s", o.TLSMode)
	default:
		return nil, fmt.Errorf("upstream answered SSLRequest with %q", resp[0])
	}
}

func encodeStartup(params []Param) []byte {
	b := make([]byte, 8, 256)
	binary.BigEndian.PutUint32(b[4:], 196608)
	for _, p := range params {
		b = append(b, p.Name...)
		b = append(b, 0)
		b = append(b, p.Value...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// Send encodes msg into the write buffer.
func (c *Conn) Send(msg pgproto3.FrontendMessage) error {
	buf, err := msg.Encode(c.W.AvailableBuffer())
	if err != nil {
		return fmt.Errorf("encode %T: %w", msg, err)
	}
	_, err = c.W.Write(buf)
	return err
}

// SendFlush sends msg and flushes.
func (c *Conn) SendFlush(msg pgproto3.FrontendMessage) error {
	if err := c.Send(msg); err != nil {
		return err
	}
	return c.W.Flush()
}

func (c *Conn) authenticate(o DialOptions) error {
	user := ""
	for _, p := range o.Params {
		if p.Name == "user" {
			user = p.Value
		}
	}
	var scram *auth.SCRAMClient
	for {
		typ, frame, err := c.Frames.Next()
		if err != nil {
			return fmt.Errorf("read auth message: %w", err)
		}
		body := frame[5:]
		switch wire.ServerType(typ) {
		case wire.ErrorResponse:
			return decodeError(body)
		case wire.NoticeResponse, wire.NegotiateProtocolVersion:
			continue
		case wire.Authentication:
		default:
			return fmt.Errorf("unexpected message %q during upstream auth", typ)
		}
		if len(body) < 4 {
			return errors.New("short authentication message from upstream")
		}
		switch binary.BigEndian.Uint32(body) {
		case pgproto3.AuthTypeOk:
			return nil
		case pgproto3.AuthTypeCleartextPassword:
			if o.Credentials.Password == "" {
				return errors.New("upstream asks for a cleartext password but multigres has none for this role (set server_password or server_pgpass)")
			}
			err = c.SendFlush(&pgproto3.PasswordMessage{Password: o.Credentials.Password})
		case pgproto3.AuthTypeMD5Password:
			err = c.answerMD5(o.Credentials, user, body)
		case pgproto3.AuthTypeSASL:
			scram, err = c.startSCRAM(o.Credentials, body)
		case pgproto3.AuthTypeSASLContinue:
			err = c.continueSCRAM(scram, body[4:])
		case pgproto3.AuthTypeSASLFinal:
			if scram == nil {
				return errors.New("upstream sent SASLFinal before SASL")
			}
			if err := scram.ServerFinal(body[4:]); err != nil {
				return fmt.Errorf("upstream SCRAM server signature: %w", err)
			}
		default:
			return fmt.Errorf("unsupported upstream authentication type %d", binary.BigEndian.Uint32(body))
		}
		if err != nil {
			return err
		}
	}
}

func (c *Conn) answerMD5(cr Credentials, user string, body []byte) error {
	if len(body) < 8 {
		return errors.New("short md5 authentication request")
	}
	var salt [4]byte
	copy(salt[:], body[4:8])
	secret := auth.Secret{Kind: auth.SecretPlain, Plain: cr.Password}
	if cr.Password == "" {
		if cr.MD5 == "" {
			return errors.New("upstream asks for md5 auth but multigres has no password or md5 hash for this role")
		}
		secret = auth.Secret{Kind: auth.SecretMD5, MD5: cr.MD5}
	}
	resp, err := auth.MD5Response(secret, user, salt)
	if err != nil {
		return fmt.Errorf("md5 response: %w", err)
	}
	return c.SendFlush(&pgproto3.PasswordMessage{Password: resp})
}

func (c *Conn) startSCRAM(cr Credentials, body []byte) (*auth.SCRAMClient, error) {
	var m pgproto3.AuthenticationSASL
	if err := m.Decode(body); err != nil {
		return nil, fmt.Errorf("decode AuthenticationSASL: %w", err)
	}
	var sc *auth.SCRAMClient
	switch {
	case cr.hasKeys():
		sc = auth.NewSCRAMClientFromKeys(cr.ClientKey, cr.ServerKey, cr.Salt, cr.Iterations)
	case cr.Password != "":
		sc = auth.NewSCRAMClient(cr.Password)
	default:
		return nil, errors.New("upstream asks for SCRAM but multigres has neither the client's SCRAM keys nor a server_password for this role")
	}
	supported := false
	for _, mech := range m.AuthMechanisms {
		supported = supported || mech == sc.Mechanism()
	}
	if !supported {
		return nil, fmt.Errorf("upstream offers SASL mechanisms %v, multigres speaks %s", m.AuthMechanisms, sc.Mechanism())
	}
	return sc, c.SendFlush(&pgproto3.SASLInitialResponse{AuthMechanism: sc.Mechanism(), Data: sc.ClientFirst()})
}

func (c *Conn) continueSCRAM(sc *auth.SCRAMClient, data []byte) error {
	if sc == nil {
		return errors.New("upstream sent SASLContinue before SASL")
	}
	final, err := sc.ServerFirst(data)
	if err != nil {
		return fmt.Errorf("upstream SCRAM: %w", err)
	}
	return c.SendFlush(&pgproto3.SASLResponse{Data: final})
}

func (c *Conn) readUntilReady() error {
	for {
		typ, frame, err := c.Frames.Next()
		if err != nil {
			return fmt.Errorf("read startup response: %w", err)
		}
		body := frame[5:]
		switch wire.ServerType(typ) {
		case wire.ParameterStatus:
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err != nil {
				return fmt.Errorf("decode ParameterStatus: %w", err)
			}
			c.Params = append(c.Params, Param{ps.Name, ps.Value})
		case wire.BackendKeyData:
			var k pgproto3.BackendKeyData
			if err := k.Decode(body); err != nil {
				return fmt.Errorf("decode BackendKeyData: %w", err)
			}
			c.PID, c.SecretKey = k.ProcessID, k.SecretKey
		case wire.ReadyForQuery:
			if len(body) != 1 {
				return errors.New("malformed ReadyForQuery")
			}
			c.TxStatus = body[0]
			return nil
		case wire.ErrorResponse:
			return decodeError(body)
		case wire.NoticeResponse:
		default:
			return fmt.Errorf("unexpected message %q before ReadyForQuery", typ)
		}
	}
}

// decodeError turns an upstream ErrorResponse into a *pgconn.PgError, so
// the wire edge can relay its SQLSTATE and text.
func decodeError(body []byte) error {
	var e pgproto3.ErrorResponse
	if err := e.Decode(body); err != nil {
		return fmt.Errorf("decode ErrorResponse: %w", err)
	}
	return &pgconn.PgError{Severity: e.Severity, Code: e.Code, Message: e.Message, Detail: e.Detail, Hint: e.Hint}
}

// Cancel sends a CancelRequest for this connection's backend.
func (c *Conn) Cancel(ctx context.Context) error {
	return SendCancel(ctx, c.addr, c.PID, c.SecretKey)
}

// SendCancel dials addr and sends a CancelRequest. Like libpq, it does not
// use TLS: PostgreSQL accepts cancel requests in plaintext.
func SendCancel(ctx context.Context, addr string, pid uint32, secret []byte) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial for cancel: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(wire.EncodeCancel(pid, secret)); err != nil {
		return fmt.Errorf("send cancel: %w", err)
	}
	// The server closes the connection once it has read the request; wait
	// for that so the cancel is delivered before we report success.
	var b [1]byte
	_, _ = nc.Read(b[:])
	return nil
}

// Ping sends an empty query and waits for its ReadyForQuery, bounded by
// timeout: the health check of a pooled connection.
func (c *Conn) Ping(timeout time.Duration) error {
	if _, err := c.SimpleQuery("", timeout); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// ErrNotIdle: a query of the proxy's own left the server in a transaction,
// which means the connection was not in the state its holder believed.
var ErrNotIdle = errors.New("server not idle after a query of multigres' own")

// SimpleQuery runs sql as one simple query of the proxy's own on an idle
// connection nobody else reads, bounded by timeout, and returns its rows
// (every column as text, NULL as ""). The first ErrorResponse comes back
// as a *pgconn.PgError once the ReadyForQuery is read, so the connection
// stays usable; a read or write failure (or a server left in a
// transaction) is returned as is and the connection must be closed.
// ParameterStatus messages update Params.
func (c *Conn) SimpleQuery(sql string, timeout time.Duration) ([][]string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if err := c.SendFlush(&pgproto3.Query{String: sql}); err != nil {
		return nil, err
	}
	var rows [][]string
	var firstErr error
	for {
		typ, frame, err := c.Frames.Next()
		if err != nil {
			return nil, err
		}
		switch wire.ServerType(typ) {
		case wire.DataRow:
			var row pgproto3.DataRow
			if err := row.Decode(frame[5:]); err != nil {
				return nil, fmt.Errorf("decode DataRow: %w", err)
			}
			r := make([]string, len(row.Values))
			for i, v := range row.Values {
				r[i] = string(v)
			}
			rows = append(rows, r)
		case wire.ErrorResponse:
			if firstErr == nil {
				firstErr = decodeError(frame[5:])
			}
		case wire.ParameterStatus:
			c.NoteParameterStatus(frame)
		case wire.ReadyForQuery:
			if len(frame) != 6 {
				return nil, errors.New("malformed ReadyForQuery")
			}
			c.TxStatus = frame[5]
			if c.TxStatus != wire.TxIdle {
				return nil, fmt.Errorf("%w (status %q)", ErrNotIdle, c.TxStatus)
			}
			if firstErr != nil {
				return nil, firstErr
			}
			return rows, nil
		}
	}
}
