"""psycopg2 through multigres.

Tenant isolation with client-side parameters (psycopg2 always sends simple
Query messages), a server-side (named) cursor inside a transaction,
transactions with rollback, executemany/execute_values, COPY, the bypass
user, two context variables and the guide's connection errors.

python_test.go runs it with /usr/bin/python3 (Debian's python3-psycopg2)
and the MG_* variables of test/compat/internal/compatenv.
"""

import io
import os
import unittest

import psycopg2
import psycopg2.errors
import psycopg2.extras


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run through go test ./test/compat/python")
    return value


HOST, PORT, LIST_PORT = env("MG_HOST"), env("MG_PORT"), env("MG_LIST_PORT")
DB, MODE = env("MG_DATABASE"), env("MG_POOL_MODE")
ACME, GLOBEX = ["Alice", "Bob"], ["Gina"]


def connect(user, password="app_user_password", port=PORT, **kw):
    return psycopg2.connect(host=HOST, port=port, dbname=DB, user=user, password=password,
                            connect_timeout=10, **kw)


def tenant(name, **kw):
    return connect(f"app_user.{name}", **kw)


def direct():
    return psycopg2.connect(host=env("MG_PG_HOST"), port=env("MG_PG_PORT"), dbname=DB,
                            user="postgres", password="postgres_password", connect_timeout=10)


def column(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [r[0] for r in cur.fetchall()]


def truth(sql, args=None):
    """Reads as the superuser straight from PostgreSQL, past the proxy."""
    conn = direct()
    try:
        return column(conn, sql, args)
    finally:
        conn.close()


class Compat(unittest.TestCase):
    def conn(self, name, **kw):
        c = tenant(name, **kw)
        self.addCleanup(c.close)
        return c

    def assert_isolation(self, conn):
        conn.rollback()
        self.assertEqual(column(conn, "SELECT name FROM contacts ORDER BY name"), ACME)
        with conn.cursor() as cur:
            cur.execute("UPDATE contacts SET name = %s WHERE id = %s", ("pwned", 3))
            self.assertEqual(cur.rowcount, 0)
            cur.execute("DELETE FROM contacts WHERE id = %s", (3,))
            self.assertEqual(cur.rowcount, 0)
            with self.assertRaises(psycopg2.errors.InsufficientPrivilege) as ctx:
                cur.execute("INSERT INTO contacts (tenant_id, name) VALUES (%s, %s)", ("globex", "intruder"))
            self.assertIn('new row violates row-level security policy for table "contacts"', str(ctx.exception))
        conn.rollback()
        self.assertEqual(truth("SELECT name FROM contacts WHERE id = 3"), GLOBEX)
        self.assertEqual(truth("SELECT count(*) FROM contacts WHERE name IN ('pwned', 'intruder')"), [0])

    def test_isolation(self):
        acme, globex = self.conn("acme"), self.conn("globex")
        self.assert_isolation(acme)
        self.assertEqual(column(globex, "SELECT name FROM contacts ORDER BY name"), GLOBEX)
        self.assertEqual(column(acme, "SELECT current_tenant_id() || ' ' || current_user"), ["acme app_user"])
        acme.rollback()
        acme.autocommit = True
        self.assert_isolation(acme)

    def test_server_side_cursor_in_transaction(self):
        conn = self.conn("py_cursor")
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur, "INSERT INTO contacts (tenant_id, name) VALUES %s",
                [("py_cursor", f"n{i:03}") for i in range(250)], page_size=100)
        conn.commit()
        # A named cursor: DECLARE "contacts_cur" CURSOR WITHOUT HOLD ... in
        # the transaction psycopg2 opened, FETCH FORWARD itersize at a time.
        with conn:
            with conn.cursor(name="contacts_cur") as cur:
                cur.itersize = 40
                cur.execute("SELECT name, tenant_id FROM contacts ORDER BY name")
                first = cur.fetchmany(7)
                # It is a real server-side cursor of this transaction.
                self.assertEqual(column(conn, "SELECT name FROM multigres_audit.session_state(NULL, NULL) WHERE kind = 'cursor'"), ["contacts_cur"])
                rest = list(cur)
            self.assertEqual(conn.get_transaction_status(), psycopg2.extensions.TRANSACTION_STATUS_INTRANS)
            rows = first + rest
        self.assertEqual(len(rows), 250)
        self.assertEqual(rows[0], ("n000", "py_cursor"))
        self.assertEqual({t for _, t in rows}, {"py_cursor"})
        # acme's named cursor, in its own transaction, sees acme's rows only.
        acme = self.conn("acme")
        with acme.cursor(name="acme_cur") as cur:
            cur.execute("SELECT name FROM contacts ORDER BY name")
            self.assertEqual([r[0] for r in cur.fetchall()], ACME)
        acme.commit()
        self.assert_isolation(acme)

    def test_with_hold_cursor(self):
        conn = self.conn("acme")
        cur = conn.cursor(name="held", withhold=True)
        if MODE == "transaction":
            # WITH HOLD cursors outlive the transaction, and the server
            # connection goes back to the pool at its end: refused.
            with self.assertRaises(psycopg2.errors.FeatureNotSupported) as ctx:
                cur.execute("SELECT name FROM contacts ORDER BY name")
            self.assertIn("WITH HOLD cursors are not allowed in transaction pooling", str(ctx.exception))
            conn.rollback()
        else:
            cur.execute("SELECT name FROM contacts ORDER BY name")
            conn.commit()
            self.assertEqual([r[0] for r in cur.fetchall()], ACME)
            cur.close()
            conn.commit()
        self.assert_isolation(conn)

    def test_transactions(self):
        conn = self.conn("py_txn")
        with conn:  # commits
            with conn.cursor() as cur:
                cur.execute("INSERT INTO contacts (tenant_id, name) VALUES (%s, %s)", ("py_txn", "Alice"))
                cur.execute("INSERT INTO audit_log (tenant_id, action) VALUES (%s, %s)", ("py_txn", "contact_created"))
        with self.assertRaises(psycopg2.errors.CheckViolation):
            with conn:  # rolls back
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO contacts (tenant_id, name) VALUES (%s, %s)", ("py_txn", "Bob"))
                    cur.execute("INSERT INTO audit_log (tenant_id, action) VALUES (%s, %s)", ("py_txn", ""))
        with self.assertRaises(psycopg2.errors.InsufficientPrivilege):
            with conn:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO contacts (tenant_id, name) VALUES (%s, %s)", ("py_txn", "Carl"))
                    cur.execute("INSERT INTO audit_log (tenant_id, action) VALUES (%s, %s)", ("acme", "x"))
        self.assertEqual(column(conn, "SELECT name FROM contacts"), ["Alice"])
        self.assertEqual(column(conn, "SELECT current_tenant_id()"), ["py_txn"])
        conn.rollback()
        self.assertEqual(truth("SELECT name FROM contacts WHERE tenant_id = 'py_txn'"), ["Alice"])
        self.assertEqual(truth("SELECT action FROM audit_log WHERE tenant_id IN ('py_txn', 'acme')"), ["contact_created"])

    def test_executemany_and_copy(self):
        conn = self.conn("py_copy")
        with conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO contacts (tenant_id, name) VALUES (%s, %s)",
                            [("py_copy", "x1"), ("py_copy", "x2")])
        out = io.StringIO()
        with conn, conn.cursor() as cur:
            cur.copy_expert("COPY contacts (tenant_id, name) TO STDOUT", out)
        self.assertEqual(out.getvalue(), "py_copy\tx1\npy_copy\tx2\n")
        with self.assertRaises(psycopg2.errors.FeatureNotSupported) as ctx:
            with conn, conn.cursor() as cur:
                cur.copy_from(io.StringIO("py_copy\tx3\n"), "contacts", columns=("tenant_id", "name"))
        self.assertIn("COPY FROM not supported with row-level security", str(ctx.exception))
        self.assertEqual(column(conn, "SELECT count(*) FROM contacts"), [2])

    def test_session_set_in_autocommit(self):
        conn = self.conn("acme")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET datestyle = 'SQL, DMY'")
            for _ in range(3):
                cur.execute("SHOW datestyle")
                self.assertEqual(cur.fetchone()[0], "SQL, DMY")
                cur.execute("SELECT current_tenant_id()")
                self.assertEqual(cur.fetchone()[0], "acme")
        self.assert_isolation(conn)

    def test_session_set_in_transaction_block(self):
        # psycopg2's default (autocommit off) sends BEGIN before the first
        # statement, so a plain SET lands inside a transaction block.
        conn = self.conn("acme")
        if MODE == "transaction":
            with self.assertRaises(psycopg2.errors.FeatureNotSupported) as ctx:
                column(conn, "SHOW datestyle")
                with conn.cursor() as cur:
                    cur.execute("SET datestyle = 'SQL, DMY'")
            self.assertIn("session-level SET inside a transaction block is not supported in transaction pooling",
                          str(ctx.exception))
            conn.rollback()
        else:
            column(conn, "SHOW datestyle")
            with conn.cursor() as cur:
                cur.execute("SET datestyle = 'SQL, DMY'")
            conn.commit()
            self.assertEqual(column(conn, "SHOW datestyle"), ["SQL, DMY"])
            conn.rollback()
        # SET LOCAL is fine in both modes, for the transaction only.
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL datestyle = 'German'")
            cur.execute("SHOW datestyle")
            self.assertEqual(cur.fetchone()[0], "German, DMY")
        self.assertNotEqual(column(conn, "SHOW datestyle"), ["German, DMY"])
        conn.rollback()
        self.assert_isolation(conn)

    def test_bypass_and_direct_see_all_tenants(self):
        for conn in (connect("postgres", "postgres_password"), direct()):
            try:
                self.assertEqual(column(conn, "SELECT name FROM contacts WHERE id <= 3 ORDER BY name"), ["Alice", "Bob", "Gina"])
                self.assertEqual(column(conn, "SELECT current_user"), ["postgres"])
            finally:
                conn.close()

    def test_two_context_variables(self):
        for conn in (
            connect("app_user.list123:user456", port=LIST_PORT),
            psycopg2.connect(f"postgresql://app_user.list123%3Auser456:app_user_password@{HOST}:{LIST_PORT}/{DB}"),
        ):
            try:
                self.assertEqual(column(conn, "SELECT current_setting('app.current_list_id') || ' ' || "
                                              "current_setting('app.current_user_id')"), ["list123 user456"])
                self.assertEqual(column(conn, "SELECT name FROM list_contacts ORDER BY name"), ["Lena", "Liam"])
            finally:
                conn.close()

    def test_guide_errors(self):
        for user, port, message in (
            ("app_user", PORT, "Username must contain context values separated by '.'"),
            ("app_user.val1:val2", PORT, "Expected 1 context value(s), got 2"),
            ("app_user.list123", LIST_PORT, "Expected 2 context value(s), got 1"),
        ):
            with self.assertRaises(psycopg2.OperationalError) as ctx:
                connect(user, port=port).close()
            self.assertIn(f"FATAL:  {message}", str(ctx.exception))
        conn = self.conn("acme")
        with self.assertRaises(psycopg2.errors.InsufficientPrivilege) as ctx:
            column(conn, "SELECT * FROM notes")
        self.assertIn("permission denied for table notes", str(ctx.exception))
        conn.rollback()
        self.assertEqual(column(self.conn("py_nobody"), "SELECT name FROM contacts"), [])


if __name__ == "__main__":
    print(f"psycopg2 {psycopg2.__version__}, libpq {psycopg2.extensions.libpq_version()}, pool mode {MODE}", flush=True)
    unittest.main(verbosity=2)
