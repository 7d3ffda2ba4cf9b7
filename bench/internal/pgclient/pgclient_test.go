package pgclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/auth"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// createRole creates a login role with a SCRAM-SHA-256 password and drops
// it at cleanup.
func createRole(t *testing.T, s *pgtest.Server, password string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "pgclient_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sql := fmt.Sprintf("SET password_encryption = 'scram-sha-256'; CREATE ROLE %s LOGIN PASSWORD '%s'", name, password)
	if err := s.Exec(ctx, "postgres", sql); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+name)
	})
	return name
}

func login(t *testing.T, cfg Config) {
	t.Helper()
	c, err := Connect(cfg)
	if err != nil {
		t.Fatalf("Connect as %s: %v", cfg.User, err)
	}
	defer c.Close()
	res, err := c.Simple("SELECT current_user")
	if err != nil {
		t.Fatalf("SELECT current_user: %v", err)
	}
	if len(res.Row) != 1 || string(res.Row[0]) != cfg.User {
		t.Fatalf("current_user = %q, want %s", res.Row, cfg.User)
	}
}

func cachedKeys(password string) int {
	scramCache.Lock()
	defer scramCache.Unlock()
	n := 0
	for id := range scramCache.keys {
		if strings.HasPrefix(id, password+"\x00") {
			n++
		}
	}
	return n
}

// TestSCRAMLoginPostgres logs in to a real PostgreSQL with SCRAM-SHA-256:
// first with the password, then with the cached keys, then as another role
// with the same password (another salt: the keys client mismatches and
// Connect retries), and with a wrong password.
func TestSCRAMLoginPostgres(t *testing.T) {
	s := pgtest.Shared()
	const password = "bench-pw-\u00e4" // non-ASCII: prepared like libpq does
	roleA, roleB := createRole(t, s, password), createRole(t, s, password)
	a := Config{Addr: s.Addr(), User: roleA, Password: password, Database: "postgres", Timeout: 10 * time.Second}
	b := a
	b.User = roleB

	login(t, a) // password client
	if n := cachedKeys(password); n != 0 {
		t.Fatalf("%d keys derived after the first login, want 0 (the password client derives its own)", n)
	}
	login(t, a) // keys client
	login(t, a)
	if n := cachedKeys(password); n != 1 {
		t.Fatalf("%d keys derived after three logins, want 1", n)
	}
	login(t, b) // keys of roleA's salt: mismatch, then roleB's keys
	login(t, a)
	login(t, b)
	if n := cachedKeys(password); n != 2 {
		t.Fatalf("%d keys derived for two roles, want 2", n)
	}

	// Concurrent logins share the cache.
	errs := make(chan error, 8)
	for i := 0; i < cap(errs); i++ {
		cfg := a
		if i%2 == 1 {
			cfg = b
		}
		go func() {
			c, err := Connect(cfg)
			if err == nil {
				err = c.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent login: %v", err)
		}
	}
	if n := cachedKeys(password); n != 2 {
		t.Fatalf("%d keys derived after concurrent logins, want 2", n)
	}

	bad := a
	bad.Password = "wrong"
	for i := 0; i < 2; i++ {
		_, err := Connect(bad)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Fatalf("wrong password, login %d: err = %v, want 28P01", i, err)
		}
	}
}

// fakeServer accepts one connection, reads the startup packet and runs
// script on it.
func fakeServer(t *testing.T, script func(c net.Conn) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		var n [4]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			done <- err
			return
		}
		if _, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(n[:])-4)); err != nil {
			done <- err
			return
		}
		done <- script(c)
	}()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("fake server: %v", err)
		}
	})
	return ln.Addr().String()
}

func writeAuth(c net.Conn, code uint32, data string) error {
	b := []byte{'R', 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(8+len(data)))
	binary.BigEndian.PutUint32(b[5:], code)
	_, err := c.Write(append(b, data...))
	return err
}

func readPassword(c net.Conn) ([]byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, err
	}
	if h[0] != 'p' {
		return nil, fmt.Errorf("got message %q, want 'p'", h[0])
	}
	body := make([]byte, binary.BigEndian.Uint32(h[1:])-4)
	_, err := io.ReadFull(c, body)
	return body, err
}

// scramUpTo runs a real SCRAM exchange for password up to the
// server-final-message, which it returns instead of sending.
func scramUpTo(c net.Conn, password string) ([]byte, error) {
	sec, err := auth.NewSCRAMSecret(password, nil, 4096)
	if err != nil {
		return nil, err
	}
	sv, err := auth.NewSCRAMServer(sec)
	if err != nil {
		return nil, err
	}
	if err := writeAuth(c, 10, auth.MechSCRAMSHA256+"\x00\x00"); err != nil {
		return nil, err
	}
	init, err := readPassword(c)
	if err != nil {
		return nil, err
	}
	mech, rest, _ := bytes.Cut(init, []byte{0})
	if len(rest) < 4 {
		return nil, errors.New("short SASLInitialResponse")
	}
	serverFirst, err := sv.ClientFirst(string(mech), rest[4:])
	if err != nil {
		return nil, err
	}
	if err := writeAuth(c, 11, string(serverFirst)); err != nil {
		return nil, err
	}
	final, err := readPassword(c)
	if err != nil {
		return nil, err
	}
	return sv.ClientFinal(final)
}

func TestSCRAMLoginAgainstBadServers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script func(c net.Conn) error
		want   func(error) bool
	}{
		{"no SCRAM-SHA-256 offered", func(c net.Conn) error {
			return writeAuth(c, 10, "SCRAM-SHA-256-PLUS\x00\x00")
		}, func(err error) bool { return strings.Contains(err.Error(), "server offers no SCRAM-SHA-256") }},
		{"wrong server signature", func(c net.Conn) error {
			serverFinal, err := scramUpTo(c, "pw")
			if err != nil {
				return err
			}
			sig, _ := strings.CutPrefix(string(serverFinal), "v=")
			other := "A"
			if sig[0] == 'A' {
				other = "B"
			}
			return writeAuth(c, 12, "v="+other+sig[1:])
		}, func(err error) bool { return errors.Is(err, auth.ErrServerSignature) }},
		{"AuthenticationOk without SASLFinal", func(c net.Conn) error {
			if _, err := scramUpTo(c, "pw"); err != nil {
				return err
			}
			return writeAuth(c, 0, "")
		}, func(err error) bool { return strings.Contains(err.Error(), "before the SCRAM exchange completed") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tc.script)
			c, err := Connect(Config{Addr: addr, User: "u", Password: "pw", Database: "d", Timeout: 10 * time.Second})
			if err == nil {
				c.Close()
				t.Fatal("login succeeded")
			}
			if !tc.want(err) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
