package frontend

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestPauseStateMachine: PAUSE twice and RESUME unpaused are 55000; the
// gate opens only when every pause covering the database is lifted.
func TestPauseStateMachine(t *testing.T) {
	t.Parallel()
	s := &Server{shutdown: make(chan struct{})}
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Pause(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(ctx, "a"); err == nil {
		t.Error("PAUSE a twice succeeded")
	}
	if err := s.Pause(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if s.adm.pause.gate("b", "") == nil || s.adm.pause.gate("a", "") == nil {
		t.Error("global pause does not gate every database")
	}
	if err := s.Resume(""); err != nil {
		t.Fatal(err)
	}
	if s.adm.pause.gate("b", "") != nil || s.adm.pause.gate("a", "") == nil {
		t.Error("after RESUME: b should be open, a still paused")
	}
	if err := s.Resume("b"); err == nil {
		t.Error("RESUME of an unpaused database succeeded")
	}
	if err := s.Resume("a"); err != nil {
		t.Fatal(err)
	}
	if s.adm.pause.gate("a", "") != nil || s.adm.pause.n.Load() != 0 {
		t.Error("a still gated after RESUME a")
	}
}
