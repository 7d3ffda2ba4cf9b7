// Compat checks pgJDBC (the Debian libpostgresql-jdbc-java jar) through
// multigres: tenant isolation with plain and prepared statements (past
// prepareThreshold, so that pgJDBC switches to named server-side
// statements), DatabaseMetaData, transactions, batches, the bypass user,
// two context variables and the guide's connection errors.
//
// java_test.go compiles it with javac and runs it with the MG_* variables
// of test/compat/internal/compatenv; it prints one line per check and
// exits 1 when any check failed.

import java.sql.*;
import java.util.*;
import org.postgresql.PGStatement;

public class Compat {
    static final String HOST = env("MG_HOST");
    static final String PORT = env("MG_PORT");
    static final String LIST_PORT = env("MG_LIST_PORT");
    static final String DB = env("MG_DATABASE");
    static final String MODE = env("MG_POOL_MODE");
    static int failures = 0;

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalStateException(name + " is not set: run through go test ./test/compat/java");
        }
        return v;
    }

    interface Check { void run() throws Exception; }

    static void check(String name, Check c) {
        long start = System.nanoTime();
        try {
            c.run();
            System.out.printf("ok   %s (%d ms)%n", name, (System.nanoTime() - start) / 1_000_000);
        } catch (Throwable e) {
            failures++;
            System.out.printf("FAIL %s: %s%n", name, e);
            e.printStackTrace(System.out);
        }
    }

    static void expect(boolean cond, String fmt, Object... args) {
        if (!cond) throw new AssertionError(String.format(fmt, args));
    }

    static void expectEq(Object got, Object want, String what) {
        expect(Objects.equals(got, want), "%s: got %s, want %s", what, got, want);
    }

    static String url(String port, String extra) {
        return "jdbc:postgresql://" + HOST + ":" + port + "/" + DB + (extra.isEmpty() ? "" : "?" + extra);
    }

    static Connection tenant(String tenant) throws SQLException {
        return tenant(tenant, new Properties());
    }

    static Connection tenant(String tenant, Properties props) throws SQLException {
        props.setProperty("user", "app_user." + tenant);
        props.setProperty("password", "app_user_password");
        return DriverManager.getConnection(url(PORT, ""), settings(props));
    }

    // settings adds what the pool mode needs: nothing; pgJDBC's defaults work
    // in both pool modes (its post-login SETs are unnamed extended-protocol
    // statements, which transaction pooling tracks).
    static Properties settings(Properties props) {
        return props;
    }

    static Connection bypass() throws SQLException {
        return DriverManager.getConnection(url(PORT, ""), "postgres", "postgres_password");
    }

    static Connection direct() throws SQLException {
        return DriverManager.getConnection(
            "jdbc:postgresql://" + env("MG_PG_HOST") + ":" + env("MG_PG_PORT") + "/" + DB, "postgres", "postgres_password");
    }

    static List<String> strings(ResultSet rs) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) out.add(rs.getString(1));
        rs.close();
        return out;
    }

    static List<String> query(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            return strings(st.executeQuery(sql));
        }
    }

    // truth reads with a direct superuser connection, past the proxy.
    static List<String> truth(String sql, Object... args) throws SQLException {
        try (Connection c = direct(); PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
            return strings(ps.executeQuery());
        }
    }

    static SQLException sqlError(Check c, String what) throws Exception {
        try {
            c.run();
        } catch (SQLException e) {
            return e;
        }
        throw new AssertionError(what + ": succeeded, want an SQLException");
    }

    static void expectState(SQLException e, String state, String message) {
        expectEq(e.getSQLState(), state, "SQLSTATE of " + e.getMessage());
        expect(e.getMessage().contains(message), "message %s does not contain %s", e.getMessage(), message);
    }

    static final List<String> ACME = List.of("Alice", "Bob"), GLOBEX = List.of("Gina");

    // isolation: what every tenant connection must show, whatever the statement kind.
    static void isolation(Connection acme) throws Exception {
        expectEq(query(acme, "SELECT name FROM contacts ORDER BY name"), ACME, "acme's contacts");
        try (Statement st = acme.createStatement()) {
            expectEq(st.executeUpdate("UPDATE contacts SET name = 'pwned' WHERE id = 3"), 0, "update globex's row");
            expectEq(st.executeUpdate("DELETE FROM contacts WHERE id = 3"), 0, "delete globex's row");
        }
        SQLException e = sqlError(() -> {
            try (PreparedStatement ps = acme.prepareStatement("INSERT INTO contacts (tenant_id, name) VALUES (?, ?)")) {
                ps.setString(1, "globex");
                ps.setString(2, "intruder");
                ps.executeUpdate();
            }
        }, "insert for globex");
        expectState(e, "42501", "new row violates row-level security policy for table \"contacts\"");
        expectEq(truth("SELECT name FROM contacts WHERE id = 3"), GLOBEX, "globex's row");
        expectEq(truth("SELECT count(*)::text FROM contacts WHERE name IN ('intruder', 'pwned')"), List.of("0"), "intruder rows");
    }

    public static void main(String[] args) throws Exception {
        System.out.println("pgJDBC " + org.postgresql.util.DriverInfo.DRIVER_FULL_NAME + ", pool mode " + MODE);

        check("pgJDBC defaults (SET extra_float_digits and application_name after login)", () -> {
            Properties p = new Properties();
            p.setProperty("user", "app_user.acme");
            p.setProperty("password", "app_user_password");
            // pgJDBC sends "SET extra_float_digits = 3" with Parse/Bind/Execute
            // (unnamed) after login; transaction pooling tracks it.
            try (Connection c = DriverManager.getConnection(url(PORT, ""), p)) {
                for (int i = 0; i < 3; i++) {
                    expectEq(query(c, "SHOW extra_float_digits"), List.of("3"), "extra_float_digits");
                }
                isolation(c);
            }
            // assumeMinServerVersion=9.0: the settings travel in the startup message.
            p.setProperty("assumeMinServerVersion", "9.0");
            p.setProperty("ApplicationName", "compat-java");
            try (Connection c = DriverManager.getConnection(url(PORT, ""), p)) {
                expectEq(query(c, "SHOW extra_float_digits"), List.of("3"), "extra_float_digits");
                expectEq(query(c, "SHOW application_name"), List.of("compat-java"), "application_name");
                isolation(c);
            }
        });

        check("session settings: SET through Statement, SET LOCAL, startup options", () -> {
            try (Connection c = tenant("acme"); Statement st = c.createStatement()) {
                // pgJDBC sends every statement, SET included, as an unnamed
                // Parse/Bind/Execute: tracked in transaction mode too.
                st.execute("SET work_mem = '8MB'");
                for (int i = 0; i < 3; i++) {
                    expectEq(query(c, "SHOW work_mem"), List.of("8MB"), "work_mem after SET");
                }
                c.setAutoCommit(false);
                st.execute("SET LOCAL work_mem = '5MB'");
                expectEq(query(c, "SHOW work_mem"), List.of("5MB"), "SET LOCAL work_mem");
                c.commit();
                c.setAutoCommit(true);
                isolation(c);
            }
            // Settings in the startup packet's options are tracked in both modes.
            Properties p = new Properties();
            p.setProperty("options", "-c work_mem=16MB");
            try (Connection c = tenant("acme", p)) {
                for (int i = 0; i < 3; i++) {
                    expectEq(query(c, "SHOW work_mem"), List.of("16MB"), "work_mem from options");
                }
                isolation(c);
            }
        });

        check("tenant sees only its rows; cannot change or create another tenant's", () -> {
            try (Connection acme = tenant("acme"); Connection globex = tenant("globex")) {
                isolation(acme);
                expectEq(query(globex, "SELECT name FROM contacts ORDER BY name"), GLOBEX, "globex's contacts");
                expectEq(query(acme, "SELECT current_tenant_id() || ' ' || current_user"), List.of("acme app_user"), "context");
            }
        });

        check("PreparedStatement past prepareThreshold uses a named server-side statement", () -> {
            try (Connection acme = tenant("acme"); Connection globex = tenant("globex");
                 PreparedStatement pa = acme.prepareStatement("SELECT name FROM contacts WHERE id = ANY(?) ORDER BY name");
                 PreparedStatement pg = globex.prepareStatement("SELECT name FROM contacts WHERE id = ANY(?) ORDER BY name")) {
                expectEq(pa.unwrap(PGStatement.class).getPrepareThreshold(), 5, "default prepareThreshold");
                Array ids = acme.createArrayOf("int4", new Integer[] {1, 2, 3});
                Array gids = globex.createArrayOf("int4", new Integer[] {1, 2, 3});
                for (int i = 1; i <= 10; i++) {
                    // Interleaved with the other tenant's prepared statement.
                    pa.setArray(1, ids);
                    expectEq(strings(pa.executeQuery()), ACME, "acme execution " + i);
                    pg.setArray(1, gids);
                    expectEq(strings(pg.executeQuery()), GLOBEX, "globex execution " + i);
                }
                expect(pa.unwrap(PGStatement.class).isUseServerPrepare(), "acme's statement is not server-prepared after 10 executions");
                expect(pg.unwrap(PGStatement.class).isUseServerPrepare(), "globex's statement is not server-prepared after 10 executions");
                isolation(acme);
            }
        });

        check("prepareThreshold=1, 0 (never named) and -1 (named from the first execution)", () -> {
            for (String threshold : List.of("1", "0", "-1")) {
                Properties p = new Properties();
                p.setProperty("prepareThreshold", threshold);
                try (Connection acme = tenant("acme", p);
                     PreparedStatement ps = acme.prepareStatement("SELECT name FROM contacts WHERE tenant_id <> ? ORDER BY name")) {
                    for (int i = 0; i < 7; i++) {
                        ps.setString(1, "nobody");
                        expectEq(strings(ps.executeQuery()), ACME, "prepareThreshold=" + threshold + " execution " + (i + 1));
                    }
                    isolation(acme);
                }
            }
        });

        check("DatabaseMetaData and ResultSetMetaData", () -> {
            try (Connection acme = tenant("acme")) {
                DatabaseMetaData md = acme.getMetaData();
                expectEq(md.getDatabaseProductName(), "PostgreSQL", "product name");
                expectEq(md.getUserName(), "app_user.acme", "metadata user name (the login name)");
                List<String> tables = new ArrayList<>();
                try (ResultSet rs = md.getTables(null, "public", "%contacts", new String[] {"TABLE"})) {
                    while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
                }
                expectEq(tables, List.of("contacts", "list_contacts"), "getTables(%contacts)");
                List<String> cols = new ArrayList<>();
                try (ResultSet rs = md.getColumns(null, "public", "contacts", null)) {
                    while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                }
                expectEq(cols, List.of("id:serial", "tenant_id:varchar", "name:text", "email:text"), "getColumns(contacts)");
                List<String> pk = new ArrayList<>();
                try (ResultSet rs = md.getPrimaryKeys(null, "public", "contacts")) {
                    while (rs.next()) pk.add(rs.getString("COLUMN_NAME"));
                }
                expectEq(pk, List.of("id"), "getPrimaryKeys(contacts)");
                try (Statement st = acme.createStatement(); ResultSet rs = st.executeQuery("SELECT id, tenant_id, name FROM contacts LIMIT 1")) {
                    ResultSetMetaData rmd = rs.getMetaData();
                    expectEq(rmd.getColumnCount(), 3, "column count");
                    expectEq(rmd.getColumnTypeName(2), "varchar", "tenant_id type");
                    expectEq(rmd.getTableName(3), "contacts", "table of name");
                    expect(rmd.isAutoIncrement(1), "id is not auto-increment");
                }
                isolation(acme);
            }
        });

        check("transactions: both inserts commit, or both roll back", () -> {
            try (Connection c = tenant("java_txn")) {
                c.setAutoCommit(false);
                try (PreparedStatement ic = c.prepareStatement("INSERT INTO contacts (tenant_id, name) VALUES ('java_txn', ?)");
                     PreparedStatement ia = c.prepareStatement("INSERT INTO audit_log (tenant_id, action) VALUES ('java_txn', ?)")) {
                    ic.setString(1, "Jill");
                    ic.executeUpdate();
                    ia.setString(1, "contact_created");
                    ia.executeUpdate();
                    c.commit();
                    ic.setString(1, "Jack");
                    ic.executeUpdate();
                    ia.setString(1, "");
                    expectState(sqlError(ia::executeUpdate, "empty action"), "23514", "audit_log_action_check");
                    c.rollback();
                    ic.setString(1, "Joan");
                    ic.executeUpdate();
                    Savepoint sp = c.setSavepoint();
                    ia.setString(1, "");
                    expectState(sqlError(ia::executeUpdate, "empty action after savepoint"), "23514", "audit_log_action_check");
                    c.rollback(sp);
                    ia.setString(1, "contact_created_2");
                    ia.executeUpdate();
                    c.commit();
                }
                expectEq(query(c, "SELECT name FROM contacts ORDER BY name"), List.of("Jill", "Joan"), "java_txn's contacts");
                c.commit();
            }
            expectEq(truth("SELECT name FROM contacts WHERE tenant_id = 'java_txn' ORDER BY name"), List.of("Jill", "Joan"), "committed contacts");
            expectEq(truth("SELECT action FROM audit_log WHERE tenant_id = 'java_txn' ORDER BY action"),
                List.of("contact_created", "contact_created_2"), "committed audit log");
        });

        check("batch inserts", () -> {
            try (Connection c = tenant("java_batch"); PreparedStatement ps = c.prepareStatement("INSERT INTO contacts (tenant_id, name) VALUES (?, ?)")) {
                for (int i = 0; i < 20; i++) {
                    ps.setString(1, "java_batch");
                    ps.setString(2, "b" + i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                expectEq(counts.length, 20, "batch results");
                expectEq(query(c, "SELECT count(*)::text FROM contacts"), List.of("20"), "java_batch's rows");
                ps.setString(1, "acme");
                ps.setString(2, "intruder");
                ps.addBatch();
                SQLException e = sqlError(ps::executeBatch, "batch insert for acme");
                expect(e instanceof BatchUpdateException, "want BatchUpdateException, got %s", e);
                SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                expectEq(cause.getSQLState(), "42501", "SQLSTATE of " + cause.getMessage());
            }
            expectEq(truth("SELECT count(*)::text FROM contacts WHERE tenant_id = 'acme'"), List.of("2"), "acme's rows after the batch");
        });

        check("superuser_bypass (postgres) through multigres and the direct connection see all tenants", () -> {
            for (Connection c : List.of(bypass(), direct())) {
                try (c) {
                    expectEq(query(c, "SELECT name FROM contacts WHERE id <= 3 ORDER BY name"), List.of("Alice", "Bob", "Gina"), "all tenants");
                    expectEq(query(c, "SELECT current_user"), List.of("postgres"), "user");
                }
            }
        });

        check("two context variables: app_user.list123:user456", () -> {
            Properties p = new Properties();
            p.setProperty("user", "app_user.list123:user456");
            p.setProperty("password", "app_user_password");
            try (Connection c = DriverManager.getConnection(url(LIST_PORT, ""), settings(p))) {
                expectEq(query(c, "SELECT current_setting('app.current_list_id') || ' ' || current_setting('app.current_user_id')"),
                    List.of("list123 user456"), "context");
                List<String> names = query(c, "SELECT name FROM list_contacts ORDER BY name");
                expectEq(names, List.of("Lena", "Liam"), "list123's contacts");
            }
            // In a JDBC URL the user goes in the query string, percent-encoded.
            try (Connection c = DriverManager.getConnection(url(LIST_PORT, "user=app_user.list999%3Auser789&password=app_user_password"), settings(new Properties()))) {
                expectEq(query(c, "SELECT name FROM list_contacts ORDER BY name"), List.of("Otto"), "list999's contacts");
            }
        });

        check("the guide's connection errors", () -> {
            SQLException e = sqlError(() -> DriverManager.getConnection(url(PORT, ""), "app_user", "app_user_password").close(), "app_user");
            expectState(e, "28000", "Username must contain context values separated by '.'");
            e = sqlError(() -> DriverManager.getConnection(url(PORT, ""), "app_user.val1:val2", "app_user_password").close(), "two values");
            expectState(e, "28000", "Expected 1 context value(s), got 2");
            e = sqlError(() -> DriverManager.getConnection(url(LIST_PORT, ""), "app_user.list123", "app_user_password").close(), "one value");
            expectState(e, "28000", "Expected 2 context value(s), got 1");
            try (Connection c = tenant("acme")) {
                expectState(sqlError(() -> query(c, "SELECT * FROM notes"), "unprotected table"), "42501", "permission denied for table notes");
            }
            try (Connection c = tenant("java_nobody")) {
                expectEq(query(c, "SELECT name FROM contacts"), List.of(), "a tenant without data");
            }
        });

        System.out.println(failures == 0 ? "PASS" : failures + " check(s) FAILED");
        System.exit(failures == 0 ? 0 : 1);
    }
}
