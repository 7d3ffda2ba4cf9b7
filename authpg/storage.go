package authpg

import (
	"context"

	"github.com/multigres-proxy/multigres/authpg/totp"
)

// Storage is the tenant-scoped storage API of Store, for code that wants
// to depend on an interface (to substitute its own implementation in a
// unit test, or to wrap a Store with caching or metrics). *Store
// implements it; the package's own tests run against PostgreSQL.
type Storage interface {
	LogAuditEvent(ctx context.Context, tenantID string, ev NewAuditEvent) (*AuditEvent, error)
	ListAuditEvents(ctx context.Context, tenantID string, f AuditFilter) ([]*AuditEvent, error)
	SaveBackupCodes(ctx context.Context, tenantID, userID string, hashes []string) error
	GenerateBackupCodes(ctx context.Context, tenantID, userID string) ([]string, error)
	GetBackupCodes(ctx context.Context, tenantID, userID string) (*BackupCodeSet, error)
	DeleteBackupCodes(ctx context.Context, tenantID, userID string) error
	ConsumeBackupCode(ctx context.Context, tenantID, userID, code string) (bool, error)
	BootstrapUsers(ctx context.Context, tenantID string, users []BootstrapUser) ([]BootstrapResult, error)
	CreateInvitation(ctx context.Context, tenantID string, in NewInvitation) (*Invitation, error)
	GetInvitation(ctx context.Context, tenantID, token string) (*Invitation, error)
	GetInvitationByID(ctx context.Context, tenantID, id string) (*Invitation, error)
	ListInvitations(ctx context.Context, tenantID string) ([]*Invitation, error)
	ListPendingInvitations(ctx context.Context, tenantID string) ([]*Invitation, error)
	UpdateInvitation(ctx context.Context, tenantID, token string, up InvitationUpdate) (*Invitation, error)
	DeleteInvitation(ctx context.Context, tenantID, token string) error
	CleanupExpiredInvitations(ctx context.Context, tenantID string) (int64, error)
	AcceptInvitation(ctx context.Context, tenantID, token string) (*Invitation, error)
	AcceptInvitationWithUser(ctx context.Context, tenantID, token string, nu NewUser) (*User, *Invitation, error)
	UnlockUser(ctx context.Context, tenantID, userID string) (int64, error)
	Authenticate(ctx context.Context, tenantID, login, password string, md *SessionMetadata) (*Login, error)
	CreateSession(ctx context.Context, tenantID, userID string, md *SessionMetadata) (*Session, error)
	GetSession(ctx context.Context, tenantID, token string) (*Session, error)
	UpdateSession(ctx context.Context, tenantID, session string, up SessionUpdate) (*Session, error)
	DeleteSession(ctx context.Context, tenantID, session string) error
	DeleteUserSessions(ctx context.Context, tenantID, userID string) (int64, error)
	ListSessionsByUser(ctx context.Context, tenantID, userID string) ([]*Session, error)
	ListSessions(ctx context.Context, tenantID string) ([]*Session, error)
	CleanupExpiredSessions(ctx context.Context, tenantID string) (int64, error)
	SaveTOTPSecret(ctx context.Context, tenantID, userID, secret string) error
	ImportTOTPSecret(ctx context.Context, tenantID, userID string, enc totp.EncryptedSecret) error
	GetTOTPSecret(ctx context.Context, tenantID, userID string) (*TOTPSecret, error)
	DeleteTOTPSecret(ctx context.Context, tenantID, userID string) error
	VerifyTOTP(ctx context.Context, tenantID, userID, code string) (bool, error)
	GetUser(ctx context.Context, tenantID, id string) (*User, error)
	GetUserByHandle(ctx context.Context, tenantID, handle string) (*User, error)
	GetUserByEmail(ctx context.Context, tenantID, email string) (*User, error)
	CreateUser(ctx context.Context, tenantID string, nu NewUser) (*User, error)
	UpdateUser(ctx context.Context, tenantID, id string, up UserUpdate) (*User, error)
	DeleteUser(ctx context.Context, tenantID, id string) error
	ListUsers(ctx context.Context, tenantID string) ([]*User, error)
	HasUsers(ctx context.Context, tenantID string) (bool, error)
}

var _ Storage = (*Store)(nil)
