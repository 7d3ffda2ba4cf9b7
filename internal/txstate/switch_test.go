package txstate

import "testing"

// TestMayControlTransaction: every transaction-control keyword is found as
// a word, whatever surrounds it; plain queries take the short switch.
func TestMayControlTransaction(t *testing.T) {
	t.Parallel()
	q := func(sql string) []byte { return append([]byte("Q\x00\x00\x00\x00"), sql...) }
	for _, sql := range []string{"BEGIN", "begin;", "SELECT 1;COMMIT", "select 1; RollBack", "CALL p()", "DO $$ BEGIN END $$",
		"SELECT 1; END", "START TRANSACTION", "savepoint a", "RELEASE a", "ABORT", "VACUUM t", "CREATE INDEX CONCURRENTLY i ON t (a)",
		"SELECT 1\nEND", "SELECT 1/*x*/COMMIT", "SELECT 1begin", "LOCK t", "PREPARE TRANSACTION 'x'", "discard all"} {
		if !mayControlTransaction(q(sql)) {
			t.Errorf("%q: transaction control not seen", sql)
		}
	}
	for _, sql := range []string{"SELECT abalance FROM pgbench_accounts WHERE aid = 1", "SELECT name FROM contacts",
		"UPDATE t SET done = true", "SELECT pseudo, random() FROM weekend", "INSERT INTO t (beginning) VALUES (1)"} {
		if mayControlTransaction(q(sql)) {
			t.Errorf("%q: takes the full switch", sql)
		}
	}
}
