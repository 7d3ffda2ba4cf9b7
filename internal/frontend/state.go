package frontend

// ConnState is the state of a client connection, exposed for metrics and
// the admin console as http.ConnState is.
type ConnState int

// The states a client connection moves through, in order. A connection may
// jump to StateClosed from any state.
const (
	// StateNew: accepted, nothing read yet.
	StateNew ConnState = iota
	// StateStartup: reading SSLRequest/StartupMessage.
	StateStartup
	// StateAuth: authenticating the client.
	StateAuth
	// StateConnecting: logging in upstream.
	StateConnecting
	// StateInjecting: applying the tenant context; client input waits.
	StateInjecting
	// StateIdle: ReadyForQuery sent with status idle.
	StateIdle
	// StateActive: a query or pipeline is running.
	StateActive
	// StateInTransaction: idle inside a transaction block.
	StateInTransaction
	// StateClosed: gone.
	StateClosed
)

var stateNames = [...]string{"new", "startup", "auth", "connecting", "injecting", "idle", "active", "idle_in_transaction", "closed"}

func (s ConnState) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}
