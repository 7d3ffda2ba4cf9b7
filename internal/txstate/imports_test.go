package txstate

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoIOImports: the state machine stays pure, so that it is tested in
// milliseconds and another driver (an event loop) could run it: no file of
// the package imports the network, the operating system, I/O, contexts or
// logging, nor a project package that does I/O. (time is allowed for
// time.Duration arithmetic; the package never reads a clock.)
func TestNoIOImports(t *testing.T) {
	t.Parallel()
	forbidden := []string{"net", "os", "syscall", "io", "bufio", "context", "log", "log/slog", "runtime"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") || strings.HasPrefix(path, "github.com/multigres-proxy/multigres/internal/") && isIOPackage(path) {
					t.Errorf("%s imports %s", f, path)
				}
			}
		}
	}
}

// isIOPackage names the project's packages that do I/O.
func isIOPackage(path string) bool {
	for _, p := range []string{"backend", "pool", "frontend", "netio", "pgtest", "admin", "metrics"} {
		if strings.HasSuffix(path, "/internal/"+p) {
			return true
		}
	}
	return false
}
