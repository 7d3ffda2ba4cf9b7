package frontend

import (
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/txstate"
)

// TestAuditSettingDiffs: the audit's comparison of session settings with
// the model, as a table.
func TestAuditSettingDiffs(t *testing.T) {
	t.Parallel()
	known := auditModel{exact: map[string]string{"app.current_tenant_id": "acme"},
		canon: map[string]string{"search_path": "public"}, role: "app_user", ctxOK: true, setsOK: true}
	unknown := auditModel{exact: map[string]string{}, canon: map[string]string{}}
	canonRow := [][3]string{{"canon", "search_path", "public"}}
	cases := []struct {
		name   string
		m      auditModel
		actual map[string]string
		rows   [][3]string
		want   []string // substrings, one per expected diff
	}{
		{"exact match", known, map[string]string{"app.current_tenant_id": "acme", "search_path": "public"}, canonRow, nil},
		{"another tenant's value", known, map[string]string{"app.current_tenant_id": "globex", "search_path": "public"}, canonRow,
			[]string{`app.current_tenant_id is "globex"`}},
		{"a setting the model lacks", known, map[string]string{"app.current_tenant_id": "acme", "search_path": "public", "datestyle": "SQL, DMY"}, canonRow,
			[]string{"datestyle"}},
		{"a tracked setting missing", known, map[string]string{"app.current_tenant_id": "acme"}, canonRow,
			[]string{`search_path is ""`}},
		{"canonical value differs", known, map[string]string{"app.current_tenant_id": "acme", "search_path": "nowhere"}, canonRow,
			[]string{`search_path is "nowhere"`}},
		{"fingerprints are multigres' own", known, map[string]string{"app.current_tenant_id": "acme", "search_path": "public", "multigres_fp.app.current_tenant_id": "x"}, canonRow, nil},
		{"unknown context and settings tolerate them", unknown, map[string]string{"app.current_tenant_id": "acme", "role": "app_user", "datestyle": "SQL, DMY"}, nil, nil},
		{"unknown settings still refuse untracked ones", unknown, map[string]string{"geqo_threshold": "3"}, nil, []string{"geqo_threshold"}},
	}
	for _, c := range cases {
		got := c.m.settingDiffs(c.actual, c.rows)
		if len(got) != len(c.want) {
			t.Errorf("%s: diffs %q, want %d", c.name, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: diff %q does not mention %q", c.name, got[i], w)
			}
		}
	}
}

// TestAuditPreparedDiffs: statements on the server are compared with the
// LRU, multigres' own statements and the orphans, in both directions.
func TestAuditPreparedDiffs(t *testing.T) {
	t.Parallel()
	sc := txstate.NewServer(1, 4, nil)
	sc.Internal["mg_commit"], sc.Orphans["mg_old"] = true, true
	sc.Prepared.Add("mg_a")
	if d := preparedDiffs(sc, map[string]bool{"mg_a": true, "mg_commit": true, "mg_old": true}); len(d) != 0 {
		t.Errorf("matching sets: %v", d)
	}
	d := preparedDiffs(sc, map[string]bool{"mg_a": true, "mg_commit": true, "mg_old": true, "mg_leak": true})
	if len(d) != 1 || !strings.Contains(d[0], "mg_leak") {
		t.Errorf("an unknown statement on the server: %v", d)
	}
	d = preparedDiffs(sc, map[string]bool{"mg_commit": true, "mg_old": true})
	if len(d) != 1 || !strings.Contains(d[0], "mg_a missing") {
		t.Errorf("a statement multigres believes prepared is gone: %v", d)
	}
}

// TestTextArray: the audit's literals survive quotes.
func TestTextArray(t *testing.T) {
	t.Parallel()
	if got := textArray([]string{"a", "it's", ""}); got != `ARRAY['a', 'it''s', '']::text[]` {
		t.Errorf("textArray = %s", got)
	}
	if got := textArray(nil); got != "ARRAY[]::text[]" {
		t.Errorf("empty textArray = %s", got)
	}
}

// TestClientsForFiles: two descriptors a client after the reserve; tiny
// limits still leave some room; no real limit means none.
func TestClientsForFiles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n    uint64
		want int
	}{{40, 10}, {1024, 384}, {1 << 20, (1<<20 - fdReserve) / 2}, {1 << 40, 0}} {
		if got := clientsForFiles(c.n); got != c.want {
			t.Errorf("clientsForFiles(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}
