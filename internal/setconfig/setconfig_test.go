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

// TestSetLocal: the value is an escape string whose quotes and
// backslashes are doubled, so no value ends the literal early, whatever
// standard_conforming_strings says; NUL is refused; odd names are quoted.
func TestSetLocal(t *testing.T) {
	t.Parallel()
	cases := map[[2]string]string{
		{"app.current_tenant_id", "acme"}:       `SET LOCAL app.current_tenant_id = E'acme'`,
		{"app.current_tenant_id", `o'brien\`}:   `SET LOCAL app.current_tenant_id = E'o''brien\\'`,
		{"app.current_tenant_id", `x\'; DROP`}:  `SET LOCAL app.current_tenant_id = E'x\\''; DROP'`,
		{"App.Tenant", "ü"}:                     `SET LOCAL "App"."Tenant" = E'ü'`,
		{"app.current_tenant_id", ""}:           `SET LOCAL app.current_tenant_id = E''`,
		{`we"ird.x`, "1"}:                       `SET LOCAL "we""ird".x = E'1'`,
		{"app_user.list_id", "list123:user456"}: `SET LOCAL app_user.list_id = E'list123:user456'`,
	}
	for in, want := range cases {
		got, err := SetLocal(in[0], in[1])
		if err != nil || got != want {
			t.Errorf("SetLocal(%q, %q) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	if _, err := SetLocal("app.current_tenant_id", "a\x00b"); err == nil {
		t.Error("a NUL byte was accepted")
	}
}
