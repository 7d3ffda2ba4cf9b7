// Package auth implements the credential handling of the proxy: parsing
// stored secrets (plaintext, md5, SCRAM-SHA-256 verifiers and PgBouncer
// userlist.txt files), the server side of SCRAM-SHA-256 and md5/cleartext
// checks (clients authenticating to the proxy), and the client side of
// SCRAM-SHA-256 and md5 (the proxy logging in to the upstream server).
//
// It is the module's only implementation of SCRAM-SHA-256 key derivation
// and verifier encoding: package sql computes and checks the auth user's
// verifier with NewSCRAMSecret, ParseSecret and VerifyPassword.
//
// The package is pure: it does no network or file I/O of its own (ParseUserlist
// reads from an io.Reader it is handed) and never logs. Secret.String and
// friends are redacted so that a secret cannot leak through fmt or slog.
//
// # SCRAM passthrough
//
// The proxy must log in upstream as the client's role, yet it must not store
// the role's plaintext password anywhere (not in a config file, not in
// memory longer than a login). It does what PgBouncer >= 1.14 does with
// auth_query or a SCRAM userlist entry:
//
//  1. The proxy holds only the role's SCRAM verifier, i.e. the string
//     PostgreSQL keeps in pg_authid.rolpassword:
//     SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
//     This verifier lets a server check a proof, but not compute one:
//     StoredKey = H(ClientKey), and H is one-way.
//  2. When a client authenticates to the proxy with SCRAM, its proof is
//     ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage). The proxy
//     knows StoredKey and AuthMessage, so it recovers
//     ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) and accepts
//     the client only if H(ClientKey) == StoredKey (this is exactly the
//     check of RFC 5802, done in a way that leaves ClientKey in hand).
//  3. To log in upstream, the proxy runs the client side of SCRAM with that
//     ClientKey and the verifier's ServerKey instead of a password
//     (NewSCRAMClientFromKeys). A SCRAM client needs the password only to
//     compute SaltedPassword, from which it derives ClientKey and ServerKey;
//     with both keys given, the password is not needed. ServerKey also lets
//     the proxy verify the upstream server's signature (mutual auth).
//
// This works only when the upstream server challenges with the same salt and
// iteration count as the verifier the proxy holds, since ClientKey is bound
// to them. That holds when the verifier was read from the same server's
// pg_authid (auth_query) or copied from it into a userlist. Otherwise the
// client reports ErrPassthroughMismatch and the caller must fall back to a
// configured server password.
//
// The ClientKey recovered this way is as good as the password for logging in
// as that role on servers sharing the verifier, so callers keep it only in
// memory, for the lifetime of the client session, and never log it.
//
// # Protocol scope
//
// SCRAM-SHA-256 without channel binding: the server side never offers
// SCRAM-SHA-256-PLUS, accepts the gs2 headers "n,," and "y,," and rejects
// "p=" and authorization identities, like PostgreSQL does when channel binding
// is unavailable. Every byte from the peer is treated as hostile: messages are
// size-bounded, attributes are parsed strictly, and no input makes the code
// panic (see the fuzz tests).
//
// Passwords are prepared like PostgreSQL does (pg_saslprep): ASCII passwords
// are used as is; other passwords are normalised with the PRECIS
// OpaqueString profile, the approximation of SASLprep that pgx also uses,
// falling back to the raw bytes when the password is not valid for it, as
// PostgreSQL does. Exotic non-ASCII passwords (code points unassigned in
// Unicode 3.2 but assigned later) may therefore differ from PostgreSQL.
//
// # Fuzzing
//
// Every parser of peer or file input has a fuzz target, with seed
// corpora in testdata/fuzz. Run one with, for example:
//
//	go test ./internal/auth/ -run=XXX -fuzz=^FuzzSCRAMServerClientFinal$ -fuzztime=2m
//
// Targets: FuzzSCRAMServerClientFirst, FuzzSCRAMServerClientFinal,
// FuzzSCRAMClientServerFirst, FuzzParseUserlist, FuzzParseSecret.
package auth
