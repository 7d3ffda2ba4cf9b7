package business_test

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestGeneratedCodeUpToDate runs `sqlc diff` when sqlc is installed, so a
// query or migration changed without regenerating fails here. Without sqlc
// (CI, most machines) it is skipped; the committed code is what runs.
func TestGeneratedCodeUpToDate(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("sqlc")
	if err != nil {
		t.Skip("sqlc not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "diff").CombinedOutput()
	if err != nil {
		t.Fatalf("generated code is stale; run `sqlc generate` in authpg/business: %v\n%s", err, out)
	}
}
