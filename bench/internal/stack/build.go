package stack

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Git runs git in the source tree root and returns its trimmed output.
func Git(root string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Commit is the short hash of HEAD and whether tracked files differ from it.
func Commit(root string) (short string, dirty bool) {
	short, err := Git(root, "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown", false
	}
	st, _ := Git(root, "status", "--porcelain", "--untracked-files=no")
	return short, st != ""
}

// BuildAt builds ./cmd/multigres as it was at rev into dir/multigres-<hash>
// and returns the binary and the short hash. The source comes from `git
// archive` into dir/baseline-src: no worktree is added and nothing in the
// source tree or its git metadata changes.
func BuildAt(root, rev, dir string, log io.Writer) (bin, short string, err error) {
	full, err := Git(root, "rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return "", "", fmt.Errorf("baseline %q: %w", rev, err)
	}
	short, err = Git(root, "rev-parse", "--short", full)
	if err != nil {
		return "", "", err
	}
	src := filepath.Join(dir, "baseline-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", "", err
	}
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", full)
	untar := exec.Command("tar", "-x", "-C", src)
	if untar.Stdin, err = archive.StdoutPipe(); err != nil {
		return "", "", err
	}
	archive.Stderr, untar.Stderr = log, log
	if err := untar.Start(); err != nil {
		return "", "", err
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return "", "", fmt.Errorf("git archive %s: %w", short, err)
	}
	if err := untar.Wait(); err != nil {
		return "", "", fmt.Errorf("unpacking %s: %w", short, err)
	}
	bin = filepath.Join(dir, "multigres-"+short)
	build := exec.Command("go", "build", "-o", bin, "./cmd/multigres")
	build.Dir = src
	build.Env = append(ChildEnv(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	build.Stdout, build.Stderr = log, log
	if err := build.Run(); err != nil {
		return "", "", fmt.Errorf("go build of %s: %w", short, err)
	}
	_ = os.RemoveAll(src)
	return bin, short, nil
}

// GoBuild builds a package of the source tree into out.
func GoBuild(root, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = ChildEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
