package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// The tests in this file check the server side against real client
// implementations (pgx and libpq's psql): a minimal backend authenticates
// them with this package, as the proxy will.

type fakeResult struct {
	err       error
	clientKey []byte
}

// serveOne accepts one connection on ln and authenticates it with method
// ("scram", "md5" or "password") against secret. On success it behaves like
// an idle server until the client terminates.
func serveOne(ctx context.Context, ln net.Listener, method string, secret Secret) <-chan fakeResult {
	res := make(chan fakeResult, 1)
	go func() {
		r := fakeResult{}
		r.clientKey, r.err = serveConn(ctx, ln, method, secret)
		res <- r
	}()
	return res
}

func serveConn(ctx context.Context, ln net.Listener, method string, secret Secret) ([]byte, error) {
	conn, err := ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	be := pgproto3.NewBackend(conn, conn)
	startup, err := be.ReceiveStartupMessage()
	if err != nil {
		return nil, fmt.Errorf("startup: %w", err)
	}
	sm, ok := startup.(*pgproto3.StartupMessage)
	if !ok {
		return nil, fmt.Errorf("unexpected %T", startup)
	}
	user := sm.Parameters["user"]
	authFailed := func(cause error) ([]byte, error) {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01",
			Message: fmt.Sprintf("password authentication failed for user %q", user)})
		_ = be.Flush()
		return nil, cause
	}
	var clientKey []byte
	switch method {
	case "scram":
		srv, err := NewSCRAMServer(secret)
		if err != nil {
			return nil, err
		}
		be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: srv.Mechanisms()})
		if err := be.Flush(); err != nil {
			return nil, err
		}
		_ = be.SetAuthType(pgproto3.AuthTypeSASL)
		msg, err := be.Receive()
		if err != nil {
			return nil, fmt.Errorf("receive SASLInitialResponse: %w", err)
		}
		init, ok := msg.(*pgproto3.SASLInitialResponse)
		if !ok {
			return nil, fmt.Errorf("unexpected %T", msg)
		}
		sf, err := srv.ClientFirst(init.AuthMechanism, init.Data)
		if err != nil {
			return authFailed(err)
		}
		be.Send(&pgproto3.AuthenticationSASLContinue{Data: sf})
		if err := be.Flush(); err != nil {
			return nil, err
		}
		_ = be.SetAuthType(pgproto3.AuthTypeSASLContinue)
		msg, err = be.Receive()
		if err != nil {
			return nil, fmt.Errorf("receive SASLResponse: %w", err)
		}
		resp, ok := msg.(*pgproto3.SASLResponse)
		if !ok {
			return nil, fmt.Errorf("unexpected %T", msg)
		}
		final, err := srv.ClientFinal(resp.Data)
		if err != nil {
			return authFailed(err)
		}
		be.Send(&pgproto3.AuthenticationSASLFinal{Data: final})
		clientKey = srv.ClientKey()
	case "md5", "password":
		salt := [4]byte{0x9a, 0x01, 0xff, 0x42}
		if method == "md5" {
			be.Send(&pgproto3.AuthenticationMD5Password{Salt: salt})
			_ = be.SetAuthType(pgproto3.AuthTypeMD5Password)
		} else {
			be.Send(&pgproto3.AuthenticationCleartextPassword{})
			_ = be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
		}
		if err := be.Flush(); err != nil {
			return nil, err
		}
		msg, err := be.Receive()
		if err != nil {
			return nil, fmt.Errorf("receive PasswordMessage: %w", err)
		}
		pm, ok := msg.(*pgproto3.PasswordMessage)
		if !ok {
			return nil, fmt.Errorf("unexpected %T", msg)
		}
		if method == "md5" && !VerifyMD5(secret, user, salt, pm.Password) ||
			method == "password" && !VerifyPassword(secret, user, pm.Password) {
			return authFailed(ErrAuthFailed)
		}
	}
	be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range map[string]string{"server_version": "15.0", "client_encoding": "UTF8",
		"standard_conforming_strings": "on", "integer_datetimes": "on", "DateStyle": "ISO, MDY"} {
		be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return nil, err
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return clientKey, fmt.Errorf("after login: %w", err)
		}
		switch msg.(type) {
		case *pgproto3.Terminate:
			return clientKey, nil
		case *pgproto3.Query:
			be.Send(&pgproto3.EmptyQueryResponse{})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if err := be.Flush(); err != nil {
				return clientKey, err
			}
		}
	}
}

func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func pgxLogin(ctx context.Context, port int, user, password string) error {
	url := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/db?sslmode=disable", user, password, port)
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func psqlLogin(ctx context.Context, psql string, port int, user, password string) error {
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-c", "SELECT 1",
		fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=db sslmode=disable gssencmode=disable", port, user))
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func TestServerSideWithRealClients(t *testing.T) {
	t.Parallel()
	const user, pw = "app_user", "Cl1ent-pw"
	salt := []byte("real-client-salt")
	verifier := mustSCRAMSecret(t, pw, salt, 4096)
	wantCK, _, err := scramKeys(pw, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	psql := ""
	if dir, err := pgtest.FindBinDir(); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "psql")); err == nil {
			psql = filepath.Join(dir, "psql")
		}
	}
	clients := map[string]func(ctx context.Context, port int, user, password string) error{
		"pgx": pgxLogin,
		"psql": func(ctx context.Context, port int, user, password string) error {
			return psqlLogin(ctx, psql, port, user, password)
		},
	}
	tests := []struct {
		method   string
		secret   Secret
		password string
		ok       bool
	}{
		{"scram", verifier, pw, true},
		{"scram", verifier, "wrong", false},
		{"scram", Secret{Kind: SecretPlain, Plain: pw}, pw, true},
		{"md5", Secret{Kind: SecretMD5, MD5: MD5Hash(user, pw)}, pw, true},
		{"md5", Secret{Kind: SecretPlain, Plain: pw}, "wrong", false},
		{"password", verifier, pw, true},
		{"password", verifier, "wrong", false},
	}
	for client, login := range clients {
		for _, tt := range tests {
			name := client + "/" + tt.method + "/" + tt.secret.Kind.String() + "/ok=" + strconv.FormatBool(tt.ok)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				if client == "psql" && psql == "" {
					t.Skip("psql not installed")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				ln, port := listen(t)
				res := serveOne(ctx, ln, tt.method, tt.secret)
				err := login(ctx, port, user, tt.password)
				r := <-res
				if tt.ok {
					if err != nil || r.err != nil {
						t.Fatalf("client: %v; server: %v", err, r.err)
					}
					if tt.method == "scram" && tt.secret.Kind == SecretSCRAM && !bytes.Equal(r.clientKey, wantCK) {
						t.Fatal("recovered ClientKey differs from the password's")
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
					t.Fatalf("client err = %v, want password authentication failed", err)
				}
				if !errors.Is(r.err, ErrAuthFailed) {
					t.Fatalf("server err = %v, want ErrAuthFailed", r.err)
				}
			})
		}
	}
}
