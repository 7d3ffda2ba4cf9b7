// Package frontend accepts client connections and runs each one through its
// lifecycle. It is the wire edge: internal errors become ErrorResponses with
// SQLSTATEs only here.
//
// # Layers
//
//	net.Listener ─► Server.Serve ─► clientConn (one per client: sockets, frames, kill)
//	                                   │
//	   handshake: startup ─► tenant.Rules.Parse ─► authenticator (internal/auth)
//	              ─► backend.Dial + Apply (session)  or  pool + txstate (transaction)
//	                                   │ hands off to one handler
//	   sessionRelay (relay.go)   frames both ways; Query/Parse pass guardMessage
//	   txRelay (txrelay.go)      the I/O driver of txstate.Machine: a pooled
//	                             connection per transaction, the context switch
//	                             pipelined, answers matched to the owed queue
//	   consoleSession            the admin console (internal/admin commands)
//
// Each handler's state is its own: the session relay holds its server
// connection, the transaction relay its pool, attachment, Machine and hold
// timers (lock order at the top of txrelay.go), the console its running
// command. The connection's state (ConnState) is shared and observable.
//
// # Connection lifecycle
//
// A connection moves through the ConnState values in order:
//
//  1. StateStartup. Startup-phase packets are read with a 10,000-byte cap.
//     SSLRequest gets 'S' and a TLS handshake when a certificate is
//     configured (client_tls_mode allow/require), otherwise 'N'; bytes
//     pipelined behind an SSLRequest are a protocol violation, since they
//     were sent before encryption. GSSENCRequest gets 'N'. A CancelRequest is
//     matched against the keys multigres handed out and forwarded to that
//     client's server connection; unknown keys are dropped silently. With
//     peering, a key another process of the fleet issued is sent on to
//     that process instead (peers.go). Protocol
//     3.x minors above 0 get NegotiateProtocolVersion; other versions a FATAL.
//  2. The username becomes a tenant.Identity (or a bypass user). Startup
//     parameters that would set a context variable, role or
//     session_authorization are refused. The connection is placed on its
//     upstream cluster (routing.go: MOVE TENANT overrides, the tenant
//     directory of directory.go, tenant_routes, database_routes,
//     default_cluster); everything it does upstream, the secret lookup
//     included, happens there. A directory lookup is the one upstream
//     query before authentication; it is shared per tenant, cached and
//     bounded (directory.go). The directory's lock is never held while
//     the router's is taken or a query runs.
//  3. StateAuth. The client authenticates against the secret found in
//     auth_file or by auth_query. With SCRAM, the ClientKey recovered from
//     the proof is kept to log in upstream without any stored password.
//     Failures wait auth_failure_delay and get PostgreSQL's own message.
//  4. StateConnecting, StateInjecting. The server connection is opened and,
//     for tenants, the context variables and SET ROLE are applied in one
//     round trip, with a check that the role cannot bypass RLS (in
//     transaction mode: on a pooled connection, which then goes back to
//     the pool). Anything the client sends meanwhile stays unread in its
//     socket, so it cannot reach the server before the context is set.
//     Any failure is FATAL.
//  5. StateIdle/StateActive/StateInTransaction: the handler runs. Frames
//     are relayed without decoding, except Query and Parse, which pass the
//     guard seam, and ReadyForQuery, which drives the state. In
//     transaction pooling (txrelay.go, txserver.go, txstate) the client
//     borrows a server connection from its (cluster, database, role) pool
//     for each transaction (following its tenant to another cluster after
//     a route change, txroute.go), with the context switched in the same round trip as its
//     first message, and the extended-protocol messages that name prepared
//     statements are decoded and renamed per client.
//  6. StateClosed. Either side closing, a protocol error, a panic in the
//     connection's goroutines (logged with its stack) or Shutdown ends the
//     connection and nothing else.
//
// handshake_timeout bounds steps 1 to 4 together.
package frontend
