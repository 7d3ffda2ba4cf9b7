package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kind is how one value type is parsed from text, printed back and checked.
// parse and check return a reason ("must be 1..65535") without the value;
// the caller adds the key name and, unless the key is secret, the value.
type kind interface {
	typeName() string
	parse(s string) (any, error)
	format(v any) string
	check(v any) error
}

// strKind is a string, optionally non-empty or one of a fixed set. Blanks
// around the value are dropped unless verbatim (passwords keep them).
type strKind struct {
	nonEmpty bool
	verbatim bool
	enum     []string
}

func (k strKind) typeName() string {
	if len(k.enum) > 0 {
		return strings.Join(k.enum, "|")
	}
	return "string"
}

func (k strKind) parse(s string) (any, error) {
	if !k.verbatim {
		s = strings.TrimSpace(s)
	}
	if len(k.enum) > 0 {
		// Enum values are matched case-insensitively, as PgBouncer does.
		s = strings.ToLower(s)
	}
	return s, k.check(s)
}

func (k strKind) format(v any) string { return v.(string) }

func (k strKind) check(v any) error {
	s := v.(string)
	if len(k.enum) > 0 && !slices.Contains(k.enum, s) {
		return fmt.Errorf("must be one of %s", strings.Join(k.enum, ", "))
	}
	if k.nonEmpty && strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// intKind is an int in [min, max].
type intKind struct{ min, max int }

func (k intKind) typeName() string { return fmt.Sprintf("integer %d..%d", k.min, k.max) }

func (k intKind) parse(s string) (any, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return nil, k.rangeErr()
	}
	return n, k.check(n)
}

func (k intKind) format(v any) string { return strconv.Itoa(v.(int)) }

func (k intKind) check(v any) error {
	if n := v.(int); n < k.min || n > k.max {
		return k.rangeErr()
	}
	return nil
}

func (k intKind) rangeErr() error { return fmt.Errorf("must be %d..%d", k.min, k.max) }

// sizeKind is a byte count written as plain bytes or with a PostgreSQL
// memory unit (B, kB, MB, GB, TB; powers of 1024, case-sensitive as in
// postgresql.conf).
type sizeKind struct{ min, max int64 }

var sizeUnits = []struct {
	name string
	mult int64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}

func (k sizeKind) typeName() string { return "size " + k.format(k.min) + ".." + k.format(k.max) }

func (k sizeKind) parse(s string) (any, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.name); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > k.max/mult {
		return nil, k.rangeErr()
	}
	return n * mult, k.check(n * mult)
}

func (k sizeKind) format(v any) string {
	n := v.(int64)
	for _, u := range sizeUnits {
		if n != 0 && n%u.mult == 0 && u.mult > 1 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (k sizeKind) check(v any) error {
	if n := v.(int64); n < k.min || n > k.max {
		return k.rangeErr()
	}
	return nil
}

func (k sizeKind) rangeErr() error {
	return fmt.Errorf("must be a size from %s to %s, in bytes or with a unit B, kB, MB, GB, TB",
		k.format(k.min), k.format(k.max))
}

// durKind is a duration in Go syntax ("500ms", "1m30s") or a bare integer
// meaning seconds, as PgBouncer writes timeouts. It must be at least min.
type durKind struct{ min time.Duration }

func (k durKind) typeName() string {
	if k.min > 0 {
		return "duration ≥ " + k.min.String()
	}
	return "duration"
}

func (k durKind) parse(s string) (any, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > int64(time.Duration(1<<63-1)/time.Second) {
			return nil, k.rangeErr()
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return nil, errors.New(`must be a duration such as "500ms" or "30s", or whole seconds`)
	}
	return d, k.check(d)
}

func (k durKind) format(v any) string { return v.(time.Duration).String() }

func (k durKind) check(v any) error {
	if v.(time.Duration) < k.min {
		return k.rangeErr()
	}
	return nil
}

func (k durKind) rangeErr() error {
	if k.min == 0 {
		return errors.New("must not be negative")
	}
	return fmt.Errorf("must be at least %s", k.min)
}

// boolKind accepts the spellings PostgreSQL and PgBouncer accept.
type boolKind struct{}

func (boolKind) typeName() string { return "boolean" }

func (boolKind) parse(s string) (any, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "on", "true", "yes":
		return true, nil
	case "0", "off", "false", "no":
		return false, nil
	}
	return nil, errors.New("must be on, off, true, false, yes, no, 1 or 0")
}

func (boolKind) format(v any) string {
	if v.(bool) {
		return "on"
	}
	return "off"
}

func (boolKind) check(any) error { return nil }

// listKind is a comma-separated list of names. Blanks around items are
// dropped; an empty value is an empty list.
type listKind struct {
	nonEmpty bool
	fold     bool               // duplicates compare case-insensitively (setting names, not role names)
	elem     func(string) error // optional rule for each item
}

func (k listKind) typeName() string { return "list" }

func (k listKind) parse(s string) (any, error) {
	list := []string{}
	if strings.TrimSpace(s) != "" {
		for item := range strings.SplitSeq(s, ",") {
			list = append(list, strings.TrimSpace(item))
		}
	}
	return list, k.check(list)
}

func (k listKind) format(v any) string { return strings.Join(v.([]string), ",") }

func (k listKind) check(v any) error {
	list := v.([]string)
	if k.nonEmpty && len(list) == 0 {
		return errors.New("must list at least one name")
	}
	seen := make(map[string]bool, len(list))
	for i, item := range list {
		if item == "" {
			return fmt.Errorf("item %d is empty", i+1)
		}
		if strings.Contains(item, ",") || strings.TrimSpace(item) != item {
			return fmt.Errorf("item %q must not contain commas or surrounding blanks", item)
		}
		id := item
		if k.fold {
			id = strings.ToLower(item)
		}
		if seen[id] {
			return fmt.Errorf("%q is listed twice", item)
		}
		seen[id] = true
		if k.elem != nil {
			if err := k.elem(item); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapKind is "role:password,role2:password2". The password is everything
// after the first ':' of an entry, so it may contain ':' but not ','.
type mapKind struct{}

func (mapKind) typeName() string { return "role:password list" }

func (k mapKind) parse(s string) (any, error) {
	m := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for i, entry := range strings.Split(s, ",") {
		role, pw, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok || role == "" || pw == "" {
			return nil, fmt.Errorf("entry %d must be role:password", i+1)
		}
		if _, dup := m[role]; dup {
			return nil, fmt.Errorf("role %q is listed twice", role)
		}
		m[role] = pw
	}
	return m, nil
}

func (mapKind) format(v any) string {
	m := v.(map[string]string)
	var b strings.Builder
	for i, role := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(role + ":" + m[role])
	}
	return b.String()
}

func (mapKind) check(v any) error {
	for role, pw := range v.(map[string]string) {
		if role == "" || strings.ContainsAny(role, ":,") {
			return fmt.Errorf("role %q must be non-empty without ':' or ','", role)
		}
		if pw == "" || strings.Contains(pw, ",") || strings.TrimSpace(pw) != pw {
			return fmt.Errorf("password for role %q must be non-empty without ',' or surrounding blanks (use server_pgpass)", role)
		}
	}
	return nil
}
