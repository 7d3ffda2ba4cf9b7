package txstate

import "testing"

// TestSameShaping: the short switch shares the client's transaction only
// when every transaction-shaping setting agrees; unknown settings never do.
func TestSameShaping(t *testing.T) {
	t.Parallel()
	ro := map[string]string{"default_transaction_read_only": "on"}
	cases := []struct {
		name           string
		server, client map[string]string
		same, shapes   bool
	}{
		{"both empty", nil, nil, true, false},
		{"only untracked-for-shaping differ", map[string]string{"application_name": "a"}, map[string]string{"application_name": "b"}, true, false},
		{"server read only", ro, nil, false, true},
		{"client read only", nil, ro, false, false},
		{"both read only", ro, ro, true, true},
		{"statement_timeout differs", map[string]string{"statement_timeout": "1"}, nil, false, false},
		{"lock_timeout values differ", map[string]string{"lock_timeout": "1s"}, map[string]string{"lock_timeout": "2s"}, false, false},
		{"isolation on the server", map[string]string{"default_transaction_isolation": "serializable"}, nil, false, true},
		{"deferrable on the server", map[string]string{"default_transaction_deferrable": "on"}, nil, false, true},
		{"unknown", Unknown(), nil, false, true},
	}
	for _, c := range cases {
		if got := sameShaping(c.server, c.client); got != c.same {
			t.Errorf("%s: sameShaping = %v, want %v", c.name, got, c.same)
		}
		if got := shapesTransactions(c.server); got != c.shapes {
			t.Errorf("%s: shapesTransactions = %v, want %v", c.name, got, c.shapes)
		}
	}
	if !IsUnknown(Unknown()) || IsUnknown(nil) || IsUnknown(ro) {
		t.Error("IsUnknown tells the marker set from others wrongly")
	}
}

// TestNeedsTimerReset: a previous client's short timeout is reset before
// the switch unless the client shares it; long ones and "off" are left to
// the switch.
func TestNeedsTimerReset(t *testing.T) {
	t.Parallel()
	cases := []struct {
		server, client map[string]string
		want           bool
	}{
		{nil, nil, false},
		{map[string]string{"statement_timeout": "1"}, nil, true},
		{map[string]string{"statement_timeout": "1ms"}, map[string]string{"statement_timeout": "1ms"}, false},
		{map[string]string{"lock_timeout": "500 ms"}, nil, true},
		{map[string]string{"lock_timeout": "0.5s"}, nil, true},
		{map[string]string{"statement_timeout": "900us"}, nil, true},
		{map[string]string{"statement_timeout": "30s"}, nil, false},
		{map[string]string{"statement_timeout": "1min"}, nil, false},
		{map[string]string{"statement_timeout": "0"}, nil, false},
		{map[string]string{"statement_timeout": "soon"}, nil, true},
		{Unknown(), nil, true},
	}
	for _, c := range cases {
		if got := NeedsTimerReset(c.server, c.client); got != c.want {
			t.Errorf("server %v, client %v: %v, want %v", c.server, c.client, got, c.want)
		}
	}
}
