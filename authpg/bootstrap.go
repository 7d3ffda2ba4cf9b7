package authpg

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// BootstrapUser is an initial admin for BootstrapUsers.
type BootstrapUser struct {
	Handle      string
	Email       string
	DisplayName string
	Password    string // plaintext; hashed with bcrypt
	Role        string // default business_owner
}

// BootstrapResult tells what BootstrapUsers did for one user.
type BootstrapResult struct {
	User    *User
	Created bool // false: it existed and was brought up to date
}

// BootstrapUsers creates or updates the initial admins of a tenant, in one
// transaction. It is idempotent: running it again with the same input
// changes nothing (a password is re-hashed only if it no longer matches).
func (s *Store) BootstrapUsers(ctx context.Context, tenantID uuid.UUID, users []BootstrapUser) ([]BootstrapResult, error) {
	if _, err := normTenant(tenantID); err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.Handle == "" || u.Password == "" {
			return nil, fmt.Errorf("BootstrapUsers: %w: handle and password are required", ErrInvalidInput)
		}
		if u.Role != "" && !ValidRole(u.Role) {
			return nil, fmt.Errorf("BootstrapUsers: %w: %q", ErrInvalidRole, u.Role)
		}
	}
	var out []BootstrapResult
	err := s.tx(ctx, func(q DB) error {
		ts := *s
		ts.db = q
		out = out[:0]
		for _, bu := range users {
			role := bu.Role
			if role == "" {
				role = RoleBusinessOwner
			}
			cur, err := ts.GetUserByHandle(ctx, tenantID, bu.Handle)
			if isNotFound(err) {
				nu, err := ts.CreateUser(ctx, tenantID, NewUser{Handle: bu.Handle, Email: bu.Email,
					DisplayName: bu.DisplayName, Password: bu.Password, Role: role})
				if err != nil {
					return fmt.Errorf("BootstrapUsers: %w", err)
				}
				out = append(out, BootstrapResult{User: nu, Created: true})
				continue
			}
			if err != nil {
				return fmt.Errorf("BootstrapUsers: %w", err)
			}
			up := UserUpdate{}
			changed := false
			if cur.DisplayName != bu.DisplayName {
				up.DisplayName, changed = &bu.DisplayName, true
			}
			if (cur.Email == nil && bu.Email != "") || (cur.Email != nil && *cur.Email != bu.Email) {
				e := bu.Email
				up.Email, changed = &e, true
			}
			if cur.Role != role {
				up.Role, changed = &role, true
			}
			if !CheckPassword(cur.PasswordHash, bu.Password) {
				p := bu.Password
				up.Password, changed = &p, true
			}
			if changed {
				if cur, err = ts.UpdateUser(ctx, tenantID, cur.ID, up); err != nil {
					return fmt.Errorf("BootstrapUsers: %w", err)
				}
			}
			out = append(out, BootstrapResult{User: cur})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
