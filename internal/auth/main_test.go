package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// md5Group is a group role; pg_hba gets an md5 line for its members so the
// md5 upstream test can run against a cluster initialised with
// scram-sha-256 everywhere (scram-sha-256 lines reject md5-hashed roles).
const md5Group = "mgauth_md5_users"

// md5Unavailable explains why md5 upstream tests cannot run (external server
// whose pg_hba.conf we cannot edit); empty when they can.
var md5Unavailable string

func TestMain(m *testing.M) { pgtest.Main(m, setupMD5HBA) }

func setupMD5HBA(s *pgtest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.SuperURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '`+md5Group+`') THEN
			CREATE ROLE `+md5Group+` NOLOGIN;
		END IF; END $$`); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	var hbaFile string
	if err := conn.QueryRow(ctx, "SHOW hba_file").Scan(&hbaFile); err != nil {
		return fmt.Errorf("show hba_file: %w", err)
	}
	old, err := os.ReadFile(hbaFile)
	if err != nil {
		md5Unavailable = "cannot edit the server's pg_hba.conf: " + err.Error()
		return nil
	}
	line := "host all +" + md5Group + " 127.0.0.1/32 md5\n"
	if !strings.HasPrefix(string(old), line) {
		if err := os.WriteFile(hbaFile, append([]byte(line), old...), 0o600); err != nil {
			md5Unavailable = "cannot edit the server's pg_hba.conf: " + err.Error()
			return nil
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// The postmaster applies the reload asynchronously. Wait, bounded, until
	// an md5-hashed probe role can log in through pgx's own md5 code.
	const probe = "mgauth_md5_probe"
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+probe); err != nil {
		return fmt.Errorf("drop probe: %w", err)
	}
	if _, err := conn.Exec(ctx, "SET password_encryption = 'md5'"); err != nil {
		return fmt.Errorf("set md5: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE "+probe+" LOGIN PASSWORD 'probe_pw' IN ROLE "+md5Group); err != nil {
		return fmt.Errorf("create probe: %w", err)
	}
	defer conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+probe)
	for {
		pc, err := pgx.Connect(ctx, s.URL(probe, "probe_pw", "postgres"))
		if err == nil {
			pc.Close(context.Background())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("md5 pg_hba line not effective: %w", errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
