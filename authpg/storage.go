package authpg

import (
	"context"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg/totp"
)

// Storage is the tenant-scoped storage API of Store, for code that wants
// to depend on an interface (to substitute its own implementation in a
// unit test, or to wrap a Store with caching or metrics). *Store
// implements it; the package's own tests run against PostgreSQL.
type Storage interface {
	LogAuditEvent(ctx context.Context, tenantID uuid.UUID, ev NewAuditEvent) (*AuditEvent, error)
	ListAuditEvents(ctx context.Context, tenantID uuid.UUID, f AuditFilter) ([]*AuditEvent, error)
	SaveBackupCodes(ctx context.Context, tenantID, userID uuid.UUID, hashes []string) error
	GenerateBackupCodes(ctx context.Context, tenantID, userID uuid.UUID) ([]string, error)
	GetBackupCodes(ctx context.Context, tenantID, userID uuid.UUID) (*BackupCodeSet, error)
	DeleteBackupCodes(ctx context.Context, tenantID, userID uuid.UUID) error
	ConsumeBackupCode(ctx context.Context, tenantID, userID uuid.UUID, code string) (bool, error)
	BootstrapUsers(ctx context.Context, tenantID uuid.UUID, users []BootstrapUser) ([]BootstrapResult, error)
	CreateInvitation(ctx context.Context, tenantID uuid.UUID, in NewInvitation) (*Invitation, error)
	GetInvitation(ctx context.Context, tenantID uuid.UUID, token string) (*Invitation, error)
	GetInvitationByID(ctx context.Context, tenantID, id uuid.UUID) (*Invitation, error)
	ListInvitations(ctx context.Context, tenantID uuid.UUID) ([]*Invitation, error)
	ListPendingInvitations(ctx context.Context, tenantID uuid.UUID) ([]*Invitation, error)
	UpdateInvitation(ctx context.Context, tenantID uuid.UUID, token string, up InvitationUpdate) (*Invitation, error)
	DeleteInvitation(ctx context.Context, tenantID uuid.UUID, token string) error
	CleanupExpiredInvitations(ctx context.Context, tenantID uuid.UUID) (int64, error)
	AcceptInvitation(ctx context.Context, tenantID uuid.UUID, token string) (*Invitation, error)
	AcceptInvitationWithUser(ctx context.Context, tenantID uuid.UUID, token string, nu NewUser) (*User, *Invitation, error)
	UnlockUser(ctx context.Context, tenantID, userID uuid.UUID) (int64, error)
	Authenticate(ctx context.Context, tenantID uuid.UUID, login, password string, md *SessionMetadata) (*Login, error)
	CreateSession(ctx context.Context, tenantID, userID uuid.UUID, md *SessionMetadata) (*Session, error)
	GetSession(ctx context.Context, tenantID uuid.UUID, token string) (*Session, error)
	UpdateSession(ctx context.Context, tenantID uuid.UUID, session string, up SessionUpdate) (*Session, error)
	DeleteSession(ctx context.Context, tenantID uuid.UUID, session string) error
	DeleteUserSessions(ctx context.Context, tenantID, userID uuid.UUID) (int64, error)
	ListSessionsByUser(ctx context.Context, tenantID, userID uuid.UUID) ([]*Session, error)
	ListSessions(ctx context.Context, tenantID uuid.UUID) ([]*Session, error)
	CleanupExpiredSessions(ctx context.Context, tenantID uuid.UUID) (int64, error)
	SaveTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID, secret string) error
	ImportTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID, enc totp.EncryptedSecret) error
	GetTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID) (*TOTPSecret, error)
	DeleteTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID) error
	VerifyTOTP(ctx context.Context, tenantID, userID uuid.UUID, code string) (bool, error)
	GetUser(ctx context.Context, tenantID, id uuid.UUID) (*User, error)
	GetUserByHandle(ctx context.Context, tenantID uuid.UUID, handle string) (*User, error)
	GetUserByEmail(ctx context.Context, tenantID uuid.UUID, email string) (*User, error)
	CreateUser(ctx context.Context, tenantID uuid.UUID, nu NewUser) (*User, error)
	UpdateUser(ctx context.Context, tenantID, id uuid.UUID, up UserUpdate) (*User, error)
	DeleteUser(ctx context.Context, tenantID, id uuid.UUID) error
	ListUsers(ctx context.Context, tenantID uuid.UUID) ([]*User, error)
	HasUsers(ctx context.Context, tenantID uuid.UUID) (bool, error)
}

var _ Storage = (*Store)(nil)
