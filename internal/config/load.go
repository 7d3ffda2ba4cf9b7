package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// setting is one raw value from one source, before parsing.
type setting struct {
	key    *keyDef
	value  string
	origin string // where it came from, for errors: "multigres.conf:12", "MULTIGRES_PORT", "--port"
	inFile bool   // origin is a file position, which goes first in errors
}

// Load builds the effective configuration from defaults, the config file,
// the environment and the command-line flags, in increasing precedence, and
// validates it.
//
// args are the arguments after the subcommand, e.g.
// ["--config", "/etc/multigres.conf", "--port", "7000"]. environ is in
// os.Environ form. The file is named by --config, else by MULTIGRES_CONFIG;
// with neither, no file is read.
//
// Unknown flags, unknown MULTIGRES_* env vars, unknown file keys, stray
// arguments and bad values are errors naming the key. All such errors are
// returned together (errors.Join). -h/--help returns an error wrapping
// flag.ErrHelp; print Usage then.
func Load(args []string, environ []string) (*Config, error) {
	flagSettings, configPath, err := parseFlags(args)
	if err != nil {
		return nil, err
	}
	envSettings, envConfig, err := parseEnv(environ)
	if err != nil {
		return nil, err
	}
	if configPath == nil {
		configPath = envConfig
	}

	var fileSettings []setting
	var resolvers []ResolverConfig
	var clusters []ClusterConfig
	if configPath != nil && *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return nil, fmt.Errorf("config: read config file: %w", err)
		}
		fileSettings, resolvers, clusters, err = parseSections(*configPath, data)
		if err != nil {
			return nil, err
		}
	}

	c := Default()
	c.Resolvers = resolvers
	c.Clusters = clusters
	var errs []error
	for _, layer := range [][]setting{fileSettings, envSettings, flagSettings} {
		for _, s := range layer {
			if err := s.apply(c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// apply parses the raw value and stores it in c.
func (s setting) apply(c *Config) error {
	v, err := s.key.kind.parse(s.value)
	if err == nil && s.key.extra != nil {
		err = s.key.extra(v)
	}
	if err != nil {
		err = s.key.valueError(err, s.value)
		if s.inFile {
			return fmt.Errorf("%s: %w", s.origin, err)
		}
		return fmt.Errorf("%w (from %s)", err, s.origin)
	}
	s.key.set(c, v)
	return nil
}

// rawFlag records a flag's text; parsing waits until every source is read so
// that the flag package never echoes a secret in its own error message.
type rawFlag struct {
	key  *keyDef
	dest *[]setting
	bool bool
}

func (f *rawFlag) String() string { return "" }

func (f *rawFlag) Set(v string) error {
	*f.dest = append(*f.dest, setting{key: f.key, value: v, origin: "--" + f.key.Flag})
	return nil
}

// IsBoolFlag lets `--allow-plaintext-password` stand alone.
func (f *rawFlag) IsBoolFlag() bool { return f.bool }

// configFlag records --config.
type configFlag struct{ path **string }

func (f configFlag) String() string { return "" }

func (f configFlag) Set(v string) error {
	*f.path = &v
	return nil
}

// newFlagSet defines --config and one flag per key, recording into dest and
// path.
func newFlagSet(dest *[]setting, path **string) *flag.FlagSet {
	fs := flag.NewFlagSet("multigres", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(configFlag{path}, "config", "path of the multigres.conf file (env "+EnvConfig+")")
	for i := range keyTable {
		k := &keyTable[i]
		_, isBool := k.kind.(boolKind)
		fs.Var(&rawFlag{key: k, dest: dest, bool: isBool}, k.Flag, k.Doc)
	}
	return fs
}

func parseFlags(args []string) (settings []setting, configPath *string, err error) {
	fs := newFlagSet(&settings, &configPath)
	if err := fs.Parse(args); err != nil {
		// The flag package's messages use a single dash and no hint; say
		// it our way for the two common mistakes.
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			return nil, nil, fmt.Errorf("config: unknown flag --%s%s", name,
				suggest(strings.ReplaceAll(name, "-", "_"), func(k *keyDef) string { return "--" + k.Flag }))
		}
		if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
			return nil, nil, fmt.Errorf("config: flag --%s needs a value", name)
		}
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("config: unexpected argument %q (flags are --key value)", fs.Arg(0))
	}
	return settings, configPath, nil
}

// Usage writes the flag list, one line per key, with defaults and env vars.
func Usage(w io.Writer) {
	fmt.Fprintf(w, "  --config PATH\n\tmultigres.conf file (env %s)\n", EnvConfig)
	for i := range keyTable {
		k := &keyTable[i]
		def := k.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s %s\n\t%s\n\tdefault %s, env %s\n", k.Flag, k.Type, k.Doc, def, k.Env)
	}
}

func parseEnv(environ []string) (settings []setting, configPath *string, err error) {
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		if name == EnvConfig {
			configPath = &value
			continue
		}
		k := byName[strings.ToLower(strings.TrimPrefix(name, envPrefix))]
		if k == nil || k.Env != name {
			errs = append(errs, fmt.Errorf("config: unknown environment variable %s%s", name, suggest(strings.ToLower(strings.TrimPrefix(name, envPrefix)), func(k *keyDef) string { return k.Env })))
			continue
		}
		settings = append(settings, setting{key: k, value: value, origin: name})
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return settings, configPath, nil
}

// parseFile parses multigres.conf text (see parseSections) and returns
// what it found but the [cluster] sections.
func parseFile(name string, data []byte) ([]setting, []ResolverConfig, error) {
	settings, resolvers, _, err := parseSections(name, data)
	return settings, resolvers, err
}

// parseSections parses multigres.conf text, in the pgbouncer.ini style:
//
//	# comment            (also ';'; only at the start of a line)
//	[multigres]          (optional; the top-level keys)
//	key = value          (value may be wrapped in '…' or "…")
//	[resolver NAME]      (a context resolver; keys query, params, sets,
//	                      required, cache_ttl; see ResolverConfig)
//	[cluster NAME]       (an upstream cluster; keys host, port,
//	                      server_tls_mode, server_tls_ca; see ClusterConfig)
//
// Other sections are errors. A [multigres] header after a resolver or
// cluster section returns to the top-level keys.
// A '#' or ';' after a value is part of the value, because passwords and
// patterns may contain them. Keys are case-insensitive. A key given twice is
// an error. name is used in error messages.
func parseSections(name string, data []byte) ([]setting, []ResolverConfig, []ClusterConfig, error) {
	var settings []setting
	var errs []error
	var sections []*resolverSection
	var cur *resolverSection // nil: top-level keys
	seen := map[string]int{}
	text := strings.TrimPrefix(string(data), "\uFEFF")
	lineNo := 0
	for line := range strings.Lines(text) {
		lineNo++
		pos := fmt.Sprintf("%s:%d", name, lineNo)
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section, ok := strings.CutSuffix(line[1:], "]")
			section = strings.ToLower(strings.TrimSpace(section))
			rname, isResolver := parseResolverName(section)
			cname, isCluster := parseSectionName(section, "cluster")
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: malformed section header %q", pos, line))
				cur = &resolverSection{} // swallow its keys; the header error is enough
			case section == "multigres":
				cur = nil
			case isResolver:
				cur = &resolverSection{name: rname, origin: pos, values: map[string]string{}, lines: map[string]string{}}
				sections = append(sections, cur)
			case isCluster:
				cur = &resolverSection{kind: "cluster", name: cname, origin: pos, values: map[string]string{}, lines: map[string]string{}}
				sections = append(sections, cur)
			default:
				errs = append(errs, fmt.Errorf("%s: unknown section [%s] (allowed: [multigres], [resolver NAME], [cluster NAME])", pos, section))
				cur = &resolverSection{}
			}
			continue
		}
		rawKey, value, ok := strings.Cut(line, "=")
		key := strings.ToLower(strings.TrimSpace(rawKey))
		if !ok {
			errs = append(errs, fmt.Errorf("%s: expected key = value, got %q", pos, truncate(line)))
			continue
		}
		if cur != nil {
			if cur.values == nil {
				continue // inside a bad section
			}
			allowed, kind := resolverKeys, "resolver"
			if cur.kind == "cluster" {
				allowed, kind = clusterKeys, "cluster"
			}
			switch {
			case !slices.Contains(allowed, key):
				errs = append(errs, fmt.Errorf("%s: unknown key %q in [%s %s] (allowed: %s)", pos, truncate(key), kind, cur.name, strings.Join(allowed, ", ")))
			case cur.lines[key] != "":
				first := cur.lines[key][strings.LastIndexByte(cur.lines[key], ':')+1:]
				errs = append(errs, fmt.Errorf("%s: key %q already set in [%s %s] on line %s", pos, key, kind, cur.name, first))
			default:
				cur.values[key] = unquote(strings.TrimSpace(value))
				cur.lines[key] = pos
			}
			continue
		}
		k := byName[key]
		if k == nil {
			errs = append(errs, fmt.Errorf("%s: unknown key %q%s", pos, truncate(key), suggest(key, func(k *keyDef) string { return k.Name })))
			continue
		}
		if first, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: key %q already set on line %d", pos, key, first))
			continue
		}
		seen[key] = lineNo
		settings = append(settings, setting{key: k, value: unquote(strings.TrimSpace(value)), origin: pos, inFile: true})
	}
	var resolvers []ResolverConfig
	var clusters []ClusterConfig
	for _, sec := range sections {
		if sec.kind == "cluster" {
			c, err := sec.buildCluster()
			if err != nil {
				errs = append(errs, err)
			}
			clusters = append(clusters, c)
			continue
		}
		r, err := sec.build()
		if err != nil {
			errs = append(errs, err)
		}
		resolvers = append(resolvers, r)
	}
	if len(errs) > 0 {
		return nil, nil, nil, errors.Join(errs...)
	}
	return settings, resolvers, clusters, nil
}

// unquote strips one pair of matching surrounding quotes. There are no
// escapes: a value containing both quote characters at its ends cannot be
// written, which no key needs.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// truncate keeps error messages short when a file holds garbage.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// suggest returns ` (did you mean "x"?)` for a near-miss key name; show
// picks what to print for the closest key (its name or env var).
func suggest(key string, show func(*keyDef) string) string {
	best, bestDist := "", 3
	for i := range keyTable {
		if d := editDistance(key, keyTable[i].Name); d < bestDist {
			best, bestDist = show(&keyTable[i]), d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, capped in cost by the short key
// names it is used on.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
