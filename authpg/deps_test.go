package authpg_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLibraryImportsNothingOfTheProxy keeps authpg a library a service can
// take without the proxy: its packages (tests aside) import no package of
// the multigres module outside authpg/ (no internal/, no sql, no cmd), no
// cgo package and neither of the proxy's heavy dependencies. That is what
// lets authpg share the proxy's module (docs/authpg.md, "Module"), and
// what a split into its own module would need.
func TestLibraryImportsNothingOfTheProxy(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Skip("go command not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "list", "-deps",
		"-f", `{{if not .Standard}}{{.ImportPath}} {{len .CgoFiles}}{{end}}`,
		"github.com/multigres-proxy/multigres/authpg/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const self = "github.com/multigres-proxy/multigres/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, cgoFiles, _ := strings.Cut(line, " ")
		switch {
		case strings.HasPrefix(path, self) && !strings.HasPrefix(path, self+"authpg"):
			t.Errorf("authpg depends on the proxy's package %s", path)
		case cgoFiles != "0":
			t.Errorf("authpg depends on %s, which uses cgo", path)
		case strings.HasPrefix(path, "github.com/pganalyze/"), strings.HasPrefix(path, "github.com/prometheus/"):
			t.Errorf("authpg depends on %s, a dependency of the proxy only", path)
		}
	}
}
