// Package wire holds the PostgreSQL wire-protocol pieces multigres needs
// below pgproto3: the startup packet decoder (pgproto3's rejects protocol
// 3.x minors newer than 3.0, which we must answer with
// NegotiateProtocolVersion), a frame reader that forwards messages without
// decoding them, SQLSTATE codes, and the Error type that becomes an
// ErrorResponse at the wire edge.
//
// Everything here treats input as hostile: lengths are checked before any
// allocation and nothing panics on malformed bytes (see the fuzz tests).
package wire
