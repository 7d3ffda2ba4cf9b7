package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// uniqueRole returns a role name no other test (or earlier run against a
// reused server) uses.
func uniqueRole(t *testing.T, kind string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "mgauth_" + kind + "_" + hex.EncodeToString(b)
}

// createRole creates a login role with password, hashed as encryption says,
// and drops it at cleanup.
func createRole(t *testing.T, s *pgtest.Server, name, password, encryption, extra string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Simple protocol: both statements run in one session.
	sql := fmt.Sprintf("SET password_encryption = '%s'; CREATE ROLE %s LOGIN PASSWORD '%s' %s",
		encryption, name, password, extra)
	if err := s.Exec(ctx, "postgres", sql); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+name)
	})
}

// rolpassword reads the stored secret the way auth_query does.
func rolpassword(t *testing.T, s *pgtest.Server, role string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.Connect(t, "postgres")
	var pw string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&pw); err != nil {
		t.Fatalf("read rolpassword: %v", err)
	}
	return pw
}

// upstreamAuth answers the server's authentication request.
type upstreamAuth struct {
	scram *SCRAMClient
	md5   func(salt [4]byte) (string, error)
}

// rawLogin logs in to addr as user with the raw protocol, the way the proxy
// will: StartupMessage, then SASL or md5 driven by this package, and waits
// for ReadyForQuery. It fails unless the server said AuthenticationOk.
func rawLogin(ctx context.Context, addr, user string, a upstreamAuth) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": user, "database": "postgres"},
	})
	if err := fe.Flush(); err != nil {
		return fmt.Errorf("send startup: %w", err)
	}
	authOK, sawFinal := false, false
	for {
		msg, err := fe.Receive()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			if a.scram == nil {
				return errors.New("server asked for SASL")
			}
			if !slices.Contains(m.AuthMechanisms, a.scram.Mechanism()) {
				return fmt.Errorf("server mechanisms %v", m.AuthMechanisms)
			}
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: a.scram.Mechanism(), Data: a.scram.ClientFirst()})
		case *pgproto3.AuthenticationSASLContinue:
			final, err := a.scram.ServerFirst(m.Data)
			if err != nil {
				return fmt.Errorf("server-first: %w", err)
			}
			fe.Send(&pgproto3.SASLResponse{Data: final})
		case *pgproto3.AuthenticationSASLFinal:
			if err := a.scram.ServerFinal(m.Data); err != nil {
				return fmt.Errorf("server-final: %w", err)
			}
			sawFinal = true
			continue
		case *pgproto3.AuthenticationMD5Password:
			if a.md5 == nil {
				return errors.New("server asked for md5")
			}
			resp, err := a.md5(m.Salt)
			if err != nil {
				return fmt.Errorf("md5: %w", err)
			}
			fe.Send(&pgproto3.PasswordMessage{Password: resp})
		case *pgproto3.AuthenticationOk:
			if a.scram != nil && !sawFinal {
				return errors.New("AuthenticationOk without a verified SASL final")
			}
			authOK = true
			continue
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("server error %s: %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			if !authOK {
				return errors.New("ReadyForQuery before AuthenticationOk")
			}
			fe.Send(&pgproto3.Terminate{})
			_ = fe.Flush()
			return nil
		default:
			continue // ParameterStatus, BackendKeyData, NoticeResponse
		}
		if err := fe.Flush(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
}

func loginCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPostgresSCRAMPassthrough is the whole passthrough path against a real
// server: the verifier from pg_authid lets the proxy verify a client, and the
// ClientKey recovered from that client logs in upstream without the password.
func TestPostgresSCRAMPassthrough(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared()
	role := uniqueRole(t, "scram")
	const pw = "Passthr0ugh-pw"
	createRole(t, s, role, pw, "scram-sha-256", "")

	stored := rolpassword(t, s, role)
	secret, err := ParseSecret(stored)
	if err != nil {
		t.Fatalf("ParseSecret(pg_authid verifier): %v", err)
	}
	if secret.Kind != SecretSCRAM {
		t.Fatalf("kind = %v, want SCRAM", secret.Kind)
	}
	// Our verifier derivation agrees with PostgreSQL's byte for byte.
	if mine := mustSCRAMSecret(t, pw, secret.Salt, secret.Iterations); mine.Encode() != stored {
		t.Fatal("NewSCRAMSecret differs from PostgreSQL's verifier for the same salt")
	}
	if !VerifyPassword(secret, role, pw) || VerifyPassword(secret, role, pw+"x") {
		t.Fatal("VerifyPassword disagrees with the PostgreSQL verifier")
	}

	// Client -> proxy, with the real verifier.
	front := mustServer(t, secret)
	if err := exchange(NewSCRAMClient(pw), front); err != nil {
		t.Fatalf("client -> proxy: %v", err)
	}
	ck := front.ClientKey()
	if ck == nil {
		t.Fatal("no ClientKey recovered")
	}

	// Proxy -> PostgreSQL with the recovered keys only.
	pass := NewSCRAMClientFromKeys(ck, front.ServerKey(), front.Salt(), front.Iterations())
	if err := rawLogin(loginCtx(t), s.Addr(), role, upstreamAuth{scram: pass}); err != nil {
		t.Fatalf("passthrough login upstream: %v", err)
	}

	t.Run("password client upstream", func(t *testing.T) {
		t.Parallel()
		if err := rawLogin(loginCtx(t), s.Addr(), role, upstreamAuth{scram: NewSCRAMClient(pw)}); err != nil {
			t.Fatalf("login upstream: %v", err)
		}
	})
	t.Run("wrong password upstream", func(t *testing.T) {
		t.Parallel()
		err := rawLogin(loginCtx(t), s.Addr(), role, upstreamAuth{scram: NewSCRAMClient("nope")})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("28P01")) {
			t.Fatalf("err = %v, want 28P01", err)
		}
	})
	t.Run("corrupted ClientKey upstream", func(t *testing.T) {
		t.Parallel()
		bad := append([]byte(nil), ck...)
		bad[31] ^= 0x80
		c := NewSCRAMClientFromKeys(bad, front.ServerKey(), front.Salt(), front.Iterations())
		if err := rawLogin(loginCtx(t), s.Addr(), role, upstreamAuth{scram: c}); err == nil {
			t.Fatal("corrupted ClientKey logged in")
		}
	})
	t.Run("salt changed upstream", func(t *testing.T) {
		t.Parallel()
		// Keys from a verifier with another salt (as if the password was
		// reset since the verifier was read) cannot answer the server.
		other := mustSCRAMSecret(t, pw, []byte("a different salt"), secret.Iterations)
		ck2, _, err := scramKeys(pw, other.Salt, other.Iterations)
		if err != nil {
			t.Fatal(err)
		}
		c := NewSCRAMClientFromKeys(ck2, other.ServerKey, other.Salt, other.Iterations)
		err = rawLogin(loginCtx(t), s.Addr(), role, upstreamAuth{scram: c})
		if !errors.Is(err, ErrPassthroughMismatch) {
			t.Fatalf("err = %v, want ErrPassthroughMismatch", err)
		}
	})
}

// TestPostgresMD5Upstream checks md5 hashing and the md5 upstream login
// against a role whose password PostgreSQL stored as md5.
func TestPostgresMD5Upstream(t *testing.T) {
	t.Parallel()
	if md5Unavailable != "" {
		t.Skip(md5Unavailable)
	}
	s := pgtest.Shared()
	role := uniqueRole(t, "md5")
	const pw = "md5-Passw0rd"
	createRole(t, s, role, pw, "md5", "IN ROLE "+md5Group)

	stored := rolpassword(t, s, role)
	if stored != MD5Hash(role, pw) {
		t.Fatalf("MD5Hash differs from PostgreSQL's stored hash")
	}
	secret, err := ParseSecret(stored)
	if err != nil || secret.Kind != SecretMD5 {
		t.Fatalf("ParseSecret = %v, %v; want md5", secret, err)
	}
	if _, err := NewSCRAMServer(secret); err == nil {
		t.Fatal("md5 secret accepted for SCRAM")
	}

	tests := []struct {
		name   string
		secret Secret
		ok     bool
	}{
		{"stored md5 hash", secret, true},
		{"plaintext", Secret{Kind: SecretPlain, Plain: pw}, true},
		{"wrong plaintext", Secret{Kind: SecretPlain, Plain: pw + "!"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := rawLogin(loginCtx(t), s.Addr(), role, upstreamAuth{md5: func(salt [4]byte) (string, error) {
				return MD5Response(tt.secret, role, salt)
			}})
			if tt.ok && err != nil {
				t.Fatalf("md5 login: %v", err)
			}
			if !tt.ok && (err == nil || !bytes.Contains([]byte(err.Error()), []byte("28P01"))) {
				t.Fatalf("err = %v, want 28P01", err)
			}
		})
	}
}
