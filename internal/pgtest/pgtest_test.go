package pgtest

import (
	"context"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m, nil) }

func TestSharedClusterUsesSCRAM(t *testing.T) {
	t.Parallel()
	s := Shared()
	db := s.CreateDB(t)
	conn := s.Connect(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var enc string
	if err := conn.QueryRow(ctx, "SHOW password_encryption").Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if enc != "scram-sha-256" {
		t.Fatalf("password_encryption = %q, want scram-sha-256", enc)
	}
	var current string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		t.Fatal(err)
	}
	if current != db {
		t.Fatalf("current_database = %q, want %q", current, db)
	}
}

func TestWrongPasswordRejected(t *testing.T) {
	t.Parallel()
	s := Shared()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Exec(ctx, "postgres", "SELECT 1")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	bad := &Server{Host: s.Host, Port: s.Port, User: s.User, Password: "wrong"}
	if err := bad.Exec(ctx, "postgres", "SELECT 1"); err == nil {
		t.Fatal("wrong password accepted: auth is not scram-sha-256")
	}
}
