package wire

// SQLSTATE codes used by multigres. Names follow PostgreSQL's errcodes.txt.
const (
	CodeProtocolViolation          = "08P01"
	CodeConnectionFailure          = "08006"
	CodeConnectionException        = "08000"
	CodeFeatureNotSupported        = "0A000"
	CodeInvalidAuthorization       = "28000"
	CodeInvalidPassword            = "28P01"
	CodeInsufficientPrivilege      = "42501"
	CodeSyntaxError                = "42601"
	CodeTooManyConnections         = "53300"
	CodeOutOfMemory                = "53200"
	CodeQueryCanceled              = "57014"
	CodeAdminShutdown              = "57P01"
	CodeCannotConnectNow           = "57P03"
	CodeInternalError              = "XX000"
	CodeInvalidParameterValue      = "22023"
	CodeConfigurationLimitExceeded = "53400"
	CodeDuplicatePreparedStatement = "42P05"
	CodeInvalidSQLStatementName    = "26000"
	CodeUndefinedObject            = "42704"
	CodeObjectInUse                = "55006"
	CodeNoActiveSQLTransaction     = "25P01"
	CodeActiveSQLTransaction       = "25001"
)
