package compatenv

import (
	"regexp"
	"testing"
	"time"
)

// RunNodeSuite runs test/compat/node's TypeScript suite (test/suite.ts,
// one `node --test` process through tsx) from dir against e, and fails
// with node's output unless tests ran and every one passed: node --test
// exits 0 when none failed, but skipped and todo tests must not count as
// passing either.
func RunNodeSuite(t *testing.T, dir string, e *Env) {
	t.Helper()
	args := []string{"--import", "tsx", "--test", "--test-reporter=spec", "--test-timeout=60000", "test/suite.ts"}
	out := Run(t, Cmd{Dir: dir, Env: e.Vars(t), Timeout: 3 * time.Minute}, "node", args...)
	counts := map[string]string{}
	for _, m := range nodeSummary.FindAllStringSubmatch(out, -1) {
		counts[m[1]] = m[2]
	}
	if counts["tests"] == "" || counts["tests"] == "0" || counts["pass"] != counts["tests"] ||
		counts["skipped"] != "0" || counts["todo"] != "0" {
		t.Fatalf("node --test summary %v: want every test run and passed:\n%s", counts, out)
	}
	if testing.Verbose() {
		t.Logf("node --test output:\n%s", out)
	}
}

// nodeSummary matches the spec reporter's closing counts ("ℹ pass 5").
var nodeSummary = regexp.MustCompile(`(?m)^ℹ (tests|pass|fail|skipped|todo) (\d+)$`)
