package setconfig

import (
	"reflect"
	"testing"
)

// TestParamsPreResets: a pre-reset setting is put back to its
// default (a NULL value) right before it is set, never among the signed
// context variables, whose positions context_prime relies on.
func TestParamsPreResets(t *testing.T) {
	t.Parallel()
	ctx := Context{Variables: []string{"app.current_tenant_id", "datestyle", "timezone"}, Values: []string{"acme", "ISO", "UTC"},
		Primed: 1, PreResets: []string{"datestyle"}, Resets: []string{"work_mem"}, Role: "app_user"}
	got := Params(ctx, true)
	want := [][]byte{[]byte("app.current_tenant_id"), []byte("acme"), []byte("datestyle"), nil, []byte("datestyle"), []byte("ISO"),
		[]byte("timezone"), []byte("UTC"), []byte("work_mem"), nil, []byte("role"), []byte("app_user")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("params %q, want %q", got, want)
	}
	// A pre-reset name among the signed variables is not reset there.
	ctx.Variables[0], ctx.PreResets = "datestyle", []string{"datestyle"}
	if got := Params(ctx, false); got[1] == nil {
		t.Fatal("a signed variable was reset")
	}
}
