package authpg

// DisableTenantFilterForTest removes the explicit tenant filter from the
// user queries of s (GetUser, UpdateUser, DeleteUser, ListUsers), so tests
// can show that row-level security alone isolates tenants.
func DisableTenantFilterForTest(s *Store) { s.noTenantFilter = true }
