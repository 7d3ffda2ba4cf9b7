package txstate

// Server is multigres' model of one pooled server session: what the
// relay believes is applied and prepared there. It travels with the pooled
// connection from client to client; only the Machine attached to it (or
// the driver, while no Machine is) may touch it.
type Server struct {
	// PID is the server backend's process id (signed-context MACs are
	// bound to it).
	PID uint32
	// Context is the identity of the tenant context applied last ("" for
	// none or unknown); Settings the tracked settings in effect, by name
	// (unknownSettings when multigres cannot know them).
	Context  string
	Settings map[string]string
	// Prepared is the LRU of client statements' server names prepared
	// here.
	Prepared *LRU
	// Internal are multigres' own statements prepared here (the context
	// switch's), by name.
	Internal map[string]bool
	// Orphans are server statements no longer in Prepared but still on
	// the server: the Close multigres sent for them was skipped after an
	// error. The next prepare closes them.
	Orphans map[string]bool
	// UnnamedOwner identifies the client Parse that the server's unnamed
	// statement holds (0: unknown or none).
	UnnamedOwner uint64
	// TxStatus is the status of the server's last ReadyForQuery.
	TxStatus byte
	// Param returns the value the server last reported for a parameter
	// (ParameterStatus); the driver keeps them.
	Param func(name string) (string, bool)
}

// NewServer is the model of a freshly opened session: nothing applied,
// nothing prepared. maxPrepared bounds the client statements prepared
// there (max_prepared_statements).
func NewServer(pid uint32, maxPrepared int, param func(name string) (string, bool)) *Server {
	return &Server{PID: pid, Prepared: NewLRU(max(maxPrepared, 1)), Internal: map[string]bool{},
		Orphans: map[string]bool{}, TxStatus: 'I', Param: param}
}

// SettingsKnown reports whether multigres knows the tracked settings in
// effect on the server.
func (s *Server) SettingsKnown() bool { return !IsUnknown(s.Settings) }

// forgetState marks the session's context and settings unknown: the next
// switch sets every variable and the role and resets every tracked setting.
func (s *Server) forgetState() {
	s.Context, s.Settings = "", Unknown()
}

// deallocatedAll: DEALLOCATE ALL ran, which is not transactional: the
// server has no statements left.
func (s *Server) deallocatedAll() {
	s.Prepared.Clear()
	clear(s.Internal)
	clear(s.Orphans)
}

// OwnQueryRan records that a simple query of multigres' own ran on the
// session (a health check, a reset, the audit), which drops the server's
// unnamed statement.
func (s *Server) OwnQueryRan() { s.UnnamedOwner = 0 }
