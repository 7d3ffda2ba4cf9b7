package pool

// ServerState is a server connection's state as SHOW SERVERS reports it
// (PgBouncer's SV_* states). A pooled connection is idle in its pool or
// active, held by one client; a session-mode connection is logging in
// until its client's first ReadyForQuery, then active for its whole life
// (idle while its client is idle).
type ServerState int

const (
	// ServerIdle: in the pool, free for the next transaction (SV_IDLE);
	// or a session-mode connection whose client is idle.
	ServerIdle ServerState = iota
	// ServerActive: held by a client (SV_ACTIVE).
	ServerActive
	// ServerLogin: logging in, or having the tenant context applied
	// (SV_LOGIN).
	ServerLogin
)

var serverStateNames = [...]string{"idle", "active", "login"}

func (s ServerState) String() string {
	if s < 0 || int(s) >= len(serverStateNames) {
		return "unknown"
	}
	return serverStateNames[s]
}
