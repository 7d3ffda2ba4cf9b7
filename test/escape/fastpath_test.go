package escape

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFunctionCallMessage: the FunctionCall ('F') protocol message calls a
// function by OID, without SQL text. set_config (OID 2078) through it must
// be refused, and the connection must stay on its tenant.
func TestFunctionCallMessage(t *testing.T) {
	t.Parallel()
	for _, mode := range poolModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			functionCallRefused(t, mode)
		})
	}
}

func functionCallRefused(t *testing.T, poolMode string) {
	w := getWorld(t)
	tenant := w.tenant()
	conn := w.connectMode(t, poolMode, "app_user."+tenant)
	ctx := testCtx(t)
	pc := conn.PgConn()
	call := &pgproto3.FunctionCall{Function: 2078, ArgFormatCodes: []uint16{0},
		Arguments: [][]byte{[]byte("app.current_tenant_id"), []byte("globex"), []byte("false")}, ResultFormatCode: 0}
	buf, err := call.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(buf[1:5]) == 0 {
		t.Fatal("bad encoding")
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	fe := hj.Frontend
	fe.Send(call)
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var refused bool
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			refused = e.Code == "42501"
		}
		if _, ok := msg.(*pgproto3.FunctionCallResponse); ok {
			t.Fatal("ESCAPE: set_config ran through the FunctionCall message")
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if !refused {
		t.Fatal("FunctionCall not refused with 42501")
	}
	// Back on a normal connection: still the same tenant.
	nc, err := pgconn.Construct(hj)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close(ctx)
	res := nc.ExecParams(ctx, "SELECT current_setting('app.current_tenant_id')", nil, nil, nil, nil).Read()
	if res.Err != nil {
		var pe *pgconn.PgError
		errors.As(res.Err, &pe)
		t.Fatal(res.Err)
	}
	if len(res.Rows) != 1 || string(res.Rows[0][0]) != tenant {
		t.Fatalf("ESCAPE: tenant now %q", res.Rows)
	}
}
