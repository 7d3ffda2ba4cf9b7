package authpg_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/totp"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// TestUpgradeMovesExistingData populates a database as the previous
// version (auth migration 1) wrote it, then migrates as the database's
// owner, an ordinary role that FORCE ROW LEVEL SECURITY binds: TOTP rows
// move to user ids (a renamed user keeps theirs, the new holder of the old
// handle gets none, a row saved before its user existed finds the user, an
// orphan is dropped, duplicates keep the newest), invitation tokens become
// hashes that the old tokens still find, and plaintext enrolment secrets
// are cleared.
func TestUpgradeMovesExistingData(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	ctx := testCtx(t)
	owner := fmt.Sprintf("authpg_owner_%d", os.Getpid())
	db := fmt.Sprintf("ap_upgrade_%d", os.Getpid())
	if err := pg.Exec(ctx, "postgres", fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'pw' NOSUPERUSER NOBYPASSRLS`, owner)); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "postgres", fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, db, owner)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = pg.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		_ = pg.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+owner)
	})
	ownerDB, err := sql.Open("pgx", pg.URL(owner, "pw", db))
	if err != nil {
		t.Fatal(err)
	}
	defer ownerDB.Close()
	if res, err := authpg.MigrateTo(ctx, ownerDB, authpg.ModuleAuth, 1); err != nil || len(res) != 1 {
		t.Fatalf("MigrateTo 1 = %v, %v", res, err)
	}

	// The previous version's rows, written as its Store wrote them.
	super := newPool(t, pg.SuperURL(db), nil)
	tn, t2 := newTenant(), newTenant()
	alice, bob, newAlice := uuid.New(), uuid.New(), uuid.New()
	sessionID := uuid.New()
	const pass = "previous passphrase"
	encAlice, _ := totp.Encrypt("GEZDGNBVGY3TQOJQ", pass)
	encAliceNew, _ := totp.Encrypt(enrolSecret, pass)
	encBob, _ := totp.Encrypt("KRSXG5CTMVRXEZLU", pass)
	encGhost, _ := totp.Encrypt("MFRGGZDFMZTWQ2LK", pass)
	ins := `INSERT INTO auth.totp_secrets (tenant_id, handle, user_id, encrypted_secret, iv, auth_tag, salt, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	steps := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO auth.users (tenant_id, id, handle) VALUES ($1, $2, 'alice')`, []any{tn, alice}},
		{ins, []any{tn, "alice", alice, encAlice.EncryptedSecret, encAlice.IV, encAlice.AuthTag, encAlice.Salt, time.Now().Add(-time.Hour)}},
		{`UPDATE auth.users SET handle = 'alicia' WHERE id = $1`, []any{alice}},
		{ins, []any{tn, "alicia", alice, encAliceNew.EncryptedSecret, encAliceNew.IV, encAliceNew.AuthTag, encAliceNew.Salt, time.Now()}},
		{`INSERT INTO auth.users (tenant_id, id, handle) VALUES ($1, $2, 'alice')`, []any{tn, newAlice}},
		{ins, []any{tn, "Bob", nil, encBob.EncryptedSecret, encBob.IV, encBob.AuthTag, encBob.Salt, time.Now()}},
		{`INSERT INTO auth.users (tenant_id, id, handle) VALUES ($1, $2, 'bob')`, []any{tn, bob}},
		{ins, []any{tn, "ghost", nil, encGhost.EncryptedSecret, encGhost.IV, encGhost.AuthTag, encGhost.Salt, time.Now()}},
		{`INSERT INTO auth.invitations (tenant_id, email, token, expires_at) VALUES ($1, 'i@example.test', 'plain-token-0123456789', now() + interval '1 day')`, []any{tn}},
		{`INSERT INTO auth.invitations (tenant_id, email, token, expires_at) VALUES ($1, 'j@example.test', 'other-tenant-token-0123', now() + interval '1 day')`, []any{t2}},
		{`INSERT INTO auth.sessions (tenant_id, id, user_id, temp_totp_secret, expires_at) VALUES ($1, $2, $3, 'PLAINTEMPSECRET', now() + interval '1 day')`, []any{tn, sessionID, bob}},
	}
	for _, st := range steps {
		if _, err := super.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}

	if res, err := authpg.Migrate(ctx, ownerDB, authpg.ModuleAuth); err != nil || len(res) != 1 || res[0].Version != 2 {
		t.Fatalf("upgrade = %v, %v", res, err)
	}

	o := opts()
	o.TOTPKeys = &authpg.TOTPKeyring{CurrentID: "new", Keys: map[string][]byte{"new": testKey(9)}, Passphrase: pass}
	s, err := authpg.New(super, o)
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := super.QueryRow(ctx, `SELECT count(*) FROM auth.totp_secrets`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("%d TOTP rows after the upgrade, want 2 (alicia's newest, bob's): %v", rows, err)
	}
	now := time.Now()
	for id, secret := range map[uuid.UUID]string{alice: enrolSecret, bob: "KRSXG5CTMVRXEZLU"} {
		code, _ := totp.Code(secret, now)
		if ok, err := s.VerifyTOTP(ctx, tn, id, code); err != nil || !ok {
			t.Errorf("VerifyTOTP(%s) after the upgrade = %v, %v", id, ok, err)
		}
	}
	if _, err := s.GetTOTPSecret(ctx, tn, newAlice); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("the new holder of the handle alice has a secret: %v", err)
	}

	for tenant, tok := range map[uuid.UUID]string{tn: "plain-token-0123456789", t2: "other-tenant-token-0123"} {
		if inv, err := s.GetInvitation(ctx, tenant, tok); err != nil || inv.TenantID != tenant {
			t.Errorf("GetInvitation(old token) after the upgrade = %+v, %v", inv, err)
		}
	}
	var plainLeft int
	if err := super.QueryRow(ctx, `SELECT count(*) FROM auth.invitations WHERE token_hash LIKE '%token%'`).Scan(&plainLeft); err != nil || plainLeft != 0 {
		t.Errorf("%d plaintext invitation tokens left: %v", plainLeft, err)
	}
	x, err := s.GetSession(ctx, tn, s.SignSessionID(tn, sessionID))
	if err != nil || x.TempTOTPSecret != nil {
		t.Errorf("session after the upgrade = %+v, %v (plaintext enrolment secret should be cleared)", x, err)
	}
	var forced bool
	if err := super.QueryRow(ctx, `SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE relnamespace = 'auth'::regnamespace AND relkind = 'r'`).Scan(&forced); err != nil || !forced {
		t.Errorf("row-level security not forced on every auth table after the upgrade: %v", err)
	}
	// Status reports the new migration as applied.
	st, err := authpg.Status(ctx, ownerDB, authpg.ModuleAuth)
	if err != nil || st[0].Current != 2 || !strings.HasSuffix(st[0].Migrations[1].Name, "00002_security.sql") {
		t.Fatalf("status = %+v, %v", st, err)
	}
}
