package frontend

import (
	"sync"
	"time"
)

// roleCheckTTL bounds how long a passed "role cannot bypass RLS" check is
// trusted. The check rides in the injection round trip anyway, so the cache
// only saves a catalog lookup; a short TTL means an ALTER ROLE ... BYPASSRLS
// takes effect for new connections within seconds. Failures are never
// cached.
const roleCheckTTL = 10 * time.Second

type roleCache struct {
	mu sync.Mutex
	ok map[string]time.Time
}

func (s *Server) roleChecked(role string) bool {
	s.roles.mu.Lock()
	defer s.roles.mu.Unlock()
	t, ok := s.roles.ok[role]
	return ok && time.Since(t) < roleCheckTTL
}

func (s *Server) markRoleChecked(role string) {
	s.roles.mu.Lock()
	defer s.roles.mu.Unlock()
	if s.roles.ok == nil {
		s.roles.ok = map[string]time.Time{}
	}
	s.roles.ok[role] = time.Now()
}

// roleCheckKey names one passed role check: the role is safe for tenants
// in database on cluster (a role may bypass RLS on one cluster and not on
// another).
func roleCheckKey(cluster *upstream, role, database string) string {
	return cluster.name + "\x00" + role + "\x00" + database
}
