package wire

// ClientType is the type byte of a message a client sends after startup.
// The same byte means different things in the two directions ('C' is Close
// from a client and CommandComplete from a server), so each direction has
// its own type and the compiler keeps them apart.
type ClientType byte

// Client message types (PostgreSQL protocol 3.0, "Message Formats").
const (
	Query        ClientType = 'Q'
	Parse        ClientType = 'P'
	Bind         ClientType = 'B'
	Execute      ClientType = 'E'
	Describe     ClientType = 'D'
	Close        ClientType = 'C'
	Sync         ClientType = 'S'
	Flush        ClientType = 'H'
	FunctionCall ClientType = 'F'
	Terminate    ClientType = 'X'
	// PasswordMessage also carries SASLInitialResponse and SASLResponse.
	PasswordMessage ClientType = 'p'
	// CopyInData, CopyInDone and CopyInFail are COPY FROM STDIN's data
	// and its end, sent by the client.
	CopyInData ClientType = 'd'
	CopyInDone ClientType = 'c'
	CopyInFail ClientType = 'f'
)

// ServerType is the type byte of a message a server sends.
type ServerType byte

// Server message types.
const (
	Authentication           ServerType = 'R'
	ParameterStatus          ServerType = 'S'
	BackendKeyData           ServerType = 'K'
	ReadyForQuery            ServerType = 'Z'
	RowDescription           ServerType = 'T'
	DataRow                  ServerType = 'D'
	CommandComplete          ServerType = 'C'
	EmptyQueryResponse       ServerType = 'I'
	ErrorResponse            ServerType = 'E'
	NoticeResponse           ServerType = 'N'
	NotificationResponse     ServerType = 'A'
	ParseComplete            ServerType = '1'
	BindComplete             ServerType = '2'
	CloseComplete            ServerType = '3'
	NoData                   ServerType = 'n'
	PortalSuspended          ServerType = 's'
	ParameterDescription     ServerType = 't'
	CopyInResponse           ServerType = 'G'
	CopyOutResponse          ServerType = 'H'
	CopyBothResponse         ServerType = 'W'
	FunctionCallResponse     ServerType = 'V'
	NegotiateProtocolVersion ServerType = 'v'
	// CopyOutData and CopyOutDone are COPY TO STDOUT's data and its end,
	// sent by the server.
	CopyOutData ServerType = 'd'
	CopyOutDone ServerType = 'c'
)

// Transaction status bytes of ReadyForQuery.
const (
	TxIdle    byte = 'I'
	TxInBlock byte = 'T'
	TxFailed  byte = 'E'
)

// Targets of Close and Describe.
const (
	TargetStatement byte = 'S'
	TargetPortal    byte = 'P'
)

// Answers to SSLRequest and GSSENCRequest (a single byte, not a message).
const (
	SSLAccepted byte = 'S'
	SSLRefused  byte = 'N'
)
