package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/multigres-proxy/multigres/internal/route"
)

// ClusterConfig is one upstream PostgreSQL cluster: a `[cluster NAME]`
// section, or the default cluster that upstream_host and upstream_port
// describe (named route.DefaultCluster). Tenants are placed on clusters by
// tenant_routes, database_routes and default_cluster. Cluster sections
// are read from the config file only and need a restart to change.
type ClusterConfig struct {
	Name string // section name, lower case
	Host string // host: host name or address
	Port int    // port (default 5432)
	// ServerTLSMode and ServerTLSCA are server_tls_mode and server_tls_ca
	// for this cluster; empty in a section means the global keys'.
	ServerTLSMode string
	ServerTLSCA   string
	Origin        string // "multigres.conf:12", the section header, for errors
}

// Addr is the cluster's host:port.
func (c ClusterConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// clusterKeys are the keys allowed inside a cluster section.
var clusterKeys = []string{"host", "port", "server_tls_mode", "server_tls_ca"}

// buildCluster turns a [cluster NAME] section's raw keys into a
// ClusterConfig; errors name the line.
func (s *resolverSection) buildCluster() (ClusterConfig, error) {
	c := ClusterConfig{Name: s.name, Port: 5432, Origin: s.origin}
	var errs []error
	c.Host = strings.TrimSpace(s.values["host"])
	if c.Host == "" {
		errs = append(errs, fmt.Errorf("%s: cluster %s: host must be set", s.origin, s.name))
	}
	if v, ok := s.values["port"]; ok {
		n, err := intKind{1, 65535}.parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cluster %s: port: %w, got %q", s.lines["port"], s.name, err, v))
		} else {
			c.Port = n.(int)
		}
	}
	if v, ok := s.values["server_tls_mode"]; ok {
		k := byName["server_tls_mode"].kind
		m, err := k.parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cluster %s: server_tls_mode: %w, got %q", s.lines["server_tls_mode"], s.name, err, v))
		} else {
			c.ServerTLSMode = m.(string)
		}
	}
	c.ServerTLSCA = strings.TrimSpace(s.values["server_tls_ca"])
	return c, errors.Join(errs...)
}

// ClusterList is every cluster: the default cluster (upstream_host,
// upstream_port) first, then the sections in file order, with the global
// server TLS settings filled in where a section leaves them empty.
func (c *Config) ClusterList() []ClusterConfig {
	out := make([]ClusterConfig, 0, 1+len(c.Clusters))
	out = append(out, ClusterConfig{Name: route.DefaultCluster, Host: c.UpstreamHost, Port: c.UpstreamPort,
		ServerTLSMode: c.ServerTLSMode, ServerTLSCA: c.ServerTLSCA, Origin: "upstream_host"})
	for _, cl := range c.Clusters {
		if cl.ServerTLSMode == "" {
			cl.ServerTLSMode = c.ServerTLSMode
		}
		if cl.ServerTLSCA == "" {
			cl.ServerTLSCA = c.ServerTLSCA
		}
		out = append(out, cl)
	}
	return out
}

// HasCluster reports whether name is the default cluster or a section's.
func (c *Config) HasCluster(name string) bool {
	return name == route.DefaultCluster || slices.ContainsFunc(c.Clusters, func(cl ClusterConfig) bool { return cl.Name == name })
}

// RouteTable builds the static routing of tenant_routes, database_routes
// and default_cluster. It fails only on a configuration Validate refuses.
func (c *Config) RouteTable() (*route.Table, error) {
	return route.NewTable(c.TenantRoutes, c.DatabaseRoutes, c.DefaultCluster, c.HasCluster)
}

// validateClusters checks the cluster sections (unique valid names, not
// the default cluster's, readable CA files) and the routes between
// tenants, databases and clusters.
func (c *Config) validateClusters() []error {
	var errs []error
	names := map[string]bool{}
	for _, cl := range c.Clusters {
		where := cl.Origin
		if where == "" {
			where = "cluster " + cl.Name
		}
		switch err := route.CheckClusterName(cl.Name); {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		case cl.Name == route.DefaultCluster:
			errs = append(errs, fmt.Errorf("%s: [cluster %s]: that name is the cluster at upstream_host and upstream_port; set those keys instead", where, cl.Name))
		case names[cl.Name]:
			errs = append(errs, fmt.Errorf("%s: cluster %s: defined twice", where, cl.Name))
		}
		names[cl.Name] = true
		if cl.ServerTLSCA != "" {
			if err := checkCAFile(cl.ServerTLSCA); err != nil {
				errs = append(errs, fmt.Errorf("%s: cluster %s: server_tls_ca: %v", where, cl.Name, err))
			}
		}
	}
	if _, err := c.RouteTable(); err != nil {
		errs = append(errs, fmt.Errorf("%w (clusters are [cluster NAME] sections and default; a new section takes effect at restart)", err))
	}
	if c.RouteStateFile != "" {
		if err := checkStateFile(c.RouteStateFile); err != nil {
			errs = append(errs, fmt.Errorf("route_state_file: %w", err))
		}
	}
	return append(errs, c.validateDirectory()...)
}

// validateDirectory checks the tenant directory's keys when its query is
// set: the query takes the tenant as $1, names a database, runs as a role,
// and on a cluster that exists.
func (c *Config) validateDirectory() []error {
	if c.TenantDirectoryQuery == "" {
		return nil
	}
	var errs []error
	if !strings.Contains(c.TenantDirectoryQuery, "$1") {
		errs = append(errs, fmt.Errorf("tenant_directory_query: must take the tenant label as $1"))
	}
	if c.TenantDirectoryDatabase == "" {
		errs = append(errs, fmt.Errorf("tenant_directory_dbname: must be set when tenant_directory_query is"))
	}
	if c.AuthUser == "" {
		errs = append(errs, fmt.Errorf("auth_user: must be set when tenant_directory_query is (the directory is read as this role)"))
	}
	if !c.HasCluster(strings.ToLower(c.TenantDirectoryCluster)) {
		errs = append(errs, fmt.Errorf("tenant_directory_cluster: cluster %q is not defined (clusters are [cluster NAME] sections and default)", c.TenantDirectoryCluster))
	}
	return errs
}

// checkStateFile accepts a state file that does not exist yet (its
// directory must) or one that parses.
func checkStateFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		dir := filepath.Dir(path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("directory of %s does not exist", path)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := route.DecodeOverrides(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeClusters prints the cluster sections as multigres.conf text.
func (c *Config) writeClusters(b *strings.Builder) {
	for _, cl := range c.Clusters {
		fmt.Fprintf(b, "\n[cluster %s]\n", cl.Name)
		fmt.Fprintf(b, "host = %s\n", quoteValue(cl.Host))
		fmt.Fprintf(b, "port = %d\n", cl.Port)
		if cl.ServerTLSMode != "" {
			fmt.Fprintf(b, "server_tls_mode = %s\n", cl.ServerTLSMode)
		}
		if cl.ServerTLSCA != "" {
			fmt.Fprintf(b, "server_tls_ca = %s\n", quoteValue(cl.ServerTLSCA))
		}
	}
}
