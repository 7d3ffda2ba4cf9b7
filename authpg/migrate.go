package authpg

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Module names a set of tables migrated together, with its own goose
// version table, so modules migrate independently.
type Module string

// The six modules of the seed. ModuleBusiness is the composite of content,
// booking, giftcert and intake.
const (
	ModuleAuth     Module = "auth"
	ModuleContent  Module = "content"
	ModuleBooking  Module = "booking"
	ModuleGiftCert Module = "giftcert"
	ModuleIntake   Module = "intake"
	ModuleBusiness Module = "business"
)

// AllModules is every concrete module in dependency order.
var AllModules = []Module{ModuleAuth, ModuleContent, ModuleBooking, ModuleGiftCert, ModuleIntake}

// deps lists what each module's foreign keys point into.
var deps = map[Module][]Module{
	ModuleAuth:     nil,
	ModuleContent:  nil,
	ModuleBooking:  {ModuleContent},
	ModuleGiftCert: {ModuleBooking},
	ModuleIntake:   {ModuleBooking},
	ModuleBusiness: {ModuleContent, ModuleBooking, ModuleGiftCert, ModuleIntake},
}

//go:embed migrations
var migrationsFS embed.FS

// VersionTable is the goose version table of a module.
func VersionTable(m Module) string { return "authpg_" + string(m) + "_migrations" }

// resolve expands composites and dependencies, in dependency order, without
// duplicates. No modules means all.
func resolve(mods []Module) ([]Module, error) {
	if len(mods) == 0 {
		mods = AllModules
	}
	want := map[Module]bool{}
	var visit func(m Module) error
	visit = func(m Module) error {
		d, ok := deps[m]
		if !ok {
			return fmt.Errorf("%w: unknown module %q", ErrInvalidInput, m)
		}
		if want[m] {
			return nil
		}
		want[m] = true
		for _, x := range d {
			if err := visit(x); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range mods {
		if err := visit(m); err != nil {
			return nil, err
		}
	}
	var out []Module
	for _, m := range AllModules {
		if want[m] {
			out = append(out, m)
		}
	}
	return out, nil
}

func provider(db *sql.DB, m Module) (*goose.Provider, error) {
	sub, err := fs.Sub(migrationsFS, "migrations/"+string(m))
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", m, err)
	}
	// The session locker serialises concurrent migrators (several app
	// instances starting at once) with a Postgres advisory lock.
	// authpg's own lock id (crc32 of "authpg"), polled every second for up
	// to five minutes (goose's default polls every five seconds).
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(crc32.ChecksumIEEE([]byte("authpg")))),
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(VersionTable(m)),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("goose provider for %s: %w", m, err)
	}
	return p, nil
}

// MigrationResult is one applied migration.
type MigrationResult struct {
	Module  Module
	Version int64
	Name    string
}

// Migrate applies pending migrations of the given modules (all when none),
// plus the modules they depend on. Re-running is a no-op. db is the
// database/sql handle; MigrateURL opens one from a connection string.
func Migrate(ctx context.Context, db *sql.DB, modules ...Module) ([]MigrationResult, error) {
	if db == nil {
		return nil, errors.New("authpg.Migrate: db is nil")
	}
	mods, err := resolve(modules)
	if err != nil {
		return nil, fmt.Errorf("authpg.Migrate: %w", err)
	}
	var out []MigrationResult
	for _, m := range mods {
		p, err := provider(db, m)
		if err != nil {
			return out, fmt.Errorf("authpg.Migrate: %w", err)
		}
		res, err := p.Up(ctx)
		if err != nil {
			return out, fmt.Errorf("authpg.Migrate %s: %w", m, err)
		}
		for _, r := range res {
			out = append(out, MigrationResult{Module: m, Version: r.Source.Version, Name: r.Source.Path})
		}
	}
	return out, nil
}

// MigrateURL is Migrate over a short-lived connection to connString.
func MigrateURL(ctx context.Context, connString string, modules ...Module) ([]MigrationResult, error) {
	db, err := openSQL(connString)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return Migrate(ctx, db, modules...)
}

func openSQL(connString string) (*sql.DB, error) {
	if connString == "" {
		return nil, errors.New("authpg: empty connection string")
	}
	db, err := sql.Open("pgx", connString)
	if err != nil {
		return nil, fmt.Errorf("authpg: open: %w", err)
	}
	return db, nil
}

// ModuleStatus is the migration state of one module.
type ModuleStatus struct {
	Module     Module
	Current    int64 // applied version, 0 when none
	Latest     int64 // newest embedded version
	Migrations []MigrationState
}

// MigrationState is one embedded migration and whether it is applied.
type MigrationState struct {
	Version int64
	Name    string
	Applied bool
}

// Status reports the migration state of the given modules (all when none).
func Status(ctx context.Context, db *sql.DB, modules ...Module) ([]ModuleStatus, error) {
	mods, err := resolve(modules)
	if err != nil {
		return nil, fmt.Errorf("authpg.Status: %w", err)
	}
	var out []ModuleStatus
	for _, m := range mods {
		p, err := provider(db, m)
		if err != nil {
			return nil, fmt.Errorf("authpg.Status: %w", err)
		}
		st, err := p.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("authpg.Status %s: %w", m, err)
		}
		ms := ModuleStatus{Module: m}
		for _, s := range st {
			applied := s.State == goose.StateApplied
			ms.Migrations = append(ms.Migrations, MigrationState{Version: s.Source.Version, Name: s.Source.Path, Applied: applied})
			if applied && s.Source.Version > ms.Current {
				ms.Current = s.Source.Version
			}
			if s.Source.Version > ms.Latest {
				ms.Latest = s.Source.Version
			}
		}
		out = append(out, ms)
	}
	return out, nil
}

// StatusURL is Status over a short-lived connection to connString.
func StatusURL(ctx context.Context, connString string, modules ...Module) ([]ModuleStatus, error) {
	db, err := openSQL(connString)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return Status(ctx, db, modules...)
}

// MigrateTo applies the migrations of one module up to and including
// version, e.g. to stop before a release's migration while its upgrade is
// rehearsed. It does not pull in dependencies (migrate those first).
func MigrateTo(ctx context.Context, db *sql.DB, m Module, version int64) ([]MigrationResult, error) {
	if db == nil {
		return nil, errors.New("authpg.MigrateTo: db is nil")
	}
	if _, ok := deps[m]; !ok || m == ModuleBusiness {
		return nil, fmt.Errorf("authpg.MigrateTo: %w: module %q", ErrInvalidInput, m)
	}
	p, err := provider(db, m)
	if err != nil {
		return nil, fmt.Errorf("authpg.MigrateTo: %w", err)
	}
	res, err := p.UpTo(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("authpg.MigrateTo %s: %w", m, err)
	}
	var out []MigrationResult
	for _, r := range res {
		out = append(out, MigrationResult{Module: m, Version: r.Source.Version, Name: r.Source.Path})
	}
	return out, nil
}
