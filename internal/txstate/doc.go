// Package txstate is the transaction-pooling state machine of one client:
// pure bookkeeping, with no sockets, goroutines, locks or clocks, so that
// every decision it makes can be table-tested in milliseconds.
//
// # What it models
//
// A Machine is one client's view of transaction pooling; a Server is
// multigres' model of one pooled server session (the tenant context and
// tracked settings applied there, the statements prepared there, who owns
// its unnamed statement). The Machine holds a Server while the client is
// attached to that connection.
//
//   - The owed-response queue (queue.go): every message forwarded that
//     the server answers adds an entry, in order; each server answer is
//     matched to the head. An entry is forwarded to the client, swallowed
//     (an answer to something multigres injected) or synthesized (an
//     answer multigres gives itself, such as a ParseComplete for a
//     statement the server already has).
//   - Statement renaming and prepare-on-demand (client.go): a client's
//     named statements get server names salted by its tenant context and
//     settings, are prepared on whichever connection the client lands on
//     when it first needs them, and are closed when the connection's LRU
//     evicts them.
//   - Tracked settings and their certainty (settings.go, effects.go): what
//     a client SETs follows it from connection to connection; when a batch
//     may have undone or committed SETs, the connection's settings become
//     unknown and the next switch resets them all.
//   - The context switch (switch.go): the Bind/Execute messages that set
//     a connection's tenant context and settings in front of the client's
//     first message, in a short form (in the client's own implicit
//     transaction) or a full one (committed on its own).
//   - The Citus wrapper (citus.go, Config.Citus): on a Citus coordinator
//     every transaction runs in a block multigres opens with a SET LOCAL
//     of each context variable (which Citus carries to the workers) and
//     ends itself for implicit transactions, hiding its answers. With
//     Config.Pinned a session-mode client's own connection runs through
//     the Machine: names pass through and the context never switches.
//   - Release decisions (server.go's ServerMessage, abandon.go): a
//     connection goes back to the pool at ReadyForQuery 'I' with nothing
//     owed, is rolled back or closed when the client leaves, and is closed
//     whenever multigres cannot know its state.
//
// # Inputs and outputs
//
// The driver (internal/frontend's transaction relay) feeds the Machine
// the messages of both directions and carries out what it asks:
//
//	ClientMessage(typ, frame, effects) ─► NeedServer │ Done
//	    NeedServer: borrow a connection, then Attach(server, …) or
//	    AttachFailed(typ) after writing the error to the client.
//	ServerMessage(typ, frame) ─► ServerStep{FrameAt, Flush, Release, Reusable}
//	Abandon(unsynced) ─► the plan for a departed client's connection
//
// After every call, ToServer holds the bytes to write to the attached
// server (renamed client messages, injected Parse/Bind/Execute/Close) and
// ToClient the bytes for the client (synthesized answers; a forwarded
// server frame goes at ServerStep.FrameAt). The driver drains both. The
// Machine is not safe for concurrent use: the driver serialises calls.
package txstate
