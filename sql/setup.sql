-- multigres setup SQL, embedded in the multigres binary and applied by
-- `multigres init` inside one transaction. Every statement is idempotent:
-- re-running the file succeeds and changes nothing that was already right.
--
-- Internals live in schema "multigres". The user-facing functions live in
-- "public" because the guide calls them unqualified:
--     SELECT multigres_protect('contacts', 'tenant_id');
-- Inside function bodies every reference is schema-qualified, so a caller's
-- search_path cannot redirect them to look-alike objects.

CREATE SCHEMA IF NOT EXISTS multigres;
COMMENT ON SCHEMA multigres IS 'multigres internals; managed by multigres init';
-- Nobody but the owner may create objects here. USAGE is granted to PUBLIC
-- because table owners that are not superusers call multigres_protect, which
-- reads multigres.tenant_roles; role names are no secret (pg_roles is
-- world-readable). The sensitive function user_lookup is guarded by its own
-- EXECUTE privilege, below.
REVOKE ALL ON SCHEMA multigres FROM PUBLIC;
GRANT USAGE ON SCHEMA multigres TO PUBLIC;

-- The roles that multigres_protect grants DML to: the proxy's tenant_roles.
-- multigres init adds to it; removing a role is a manual DELETE.
CREATE TABLE IF NOT EXISTS multigres.tenant_roles (
    rolname name PRIMARY KEY
);
COMMENT ON TABLE multigres.tenant_roles IS 'roles that multigres_protect grants DML to (tenant_roles)';
REVOKE ALL ON TABLE multigres.tenant_roles FROM PUBLIC;
GRANT SELECT ON TABLE multigres.tenant_roles TO PUBLIC;

-- Signed context (context_signing = on). multigres.context_key holds an
-- HMAC-SHA256 key that only the owner can read; the proxy fetches it through
-- multigres.context_signing_key() (EXECUTE for the auth user only) and sets,
-- next to each context variable, multigres_mac.v<md5(var)> =
-- hex(HMAC(key, var || '|' || backend pid || '|' || value)). The signed
-- readers return NULL unless the MAC verifies, so a value set by any path the
-- SQL guard misses yields zero rows, never another tenant's rows. HMAC is
-- two sha256() calls and needs no pgcrypto. (The ipad and opad columns are
-- the key XOR 0x36/0x5c, precomputed by multigres init; the readers of
-- earlier versions used them.)
CREATE TABLE IF NOT EXISTS multigres.context_key (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    key     bytea   NOT NULL,
    ipad    bytea   NOT NULL,
    opad    bytea   NOT NULL,
    enabled boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE multigres.context_key IS 'context signing key; readable by the owner only';
REVOKE ALL ON TABLE multigres.context_key FROM PUBLIC;

CREATE OR REPLACE FUNCTION multigres.context_signing_key()
RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT key FROM multigres.context_key WHERE enabled $$;
REVOKE ALL ON FUNCTION multigres.context_signing_key() FROM PUBLIC;

-- Verifying a MAC costs a key-row read and an HMAC (about 10 µs per call;
-- docs/benchmarks.md), too much for every statement. So the proxy has it
-- verified once, when it sets the context: in the same statement it calls
-- multigres.context_prime(var), which checks the MAC and leaves a
-- per-session fingerprint
--
--   multigres_fp.<var> = md5(seed_a:seed_b | var | value)
--
-- The seed is 128 random bits kept as currval() of two owner-only
-- sequences: session-local (the sequences themselves are set back to 1 at
-- once, so the seed is stored nowhere), and neither readable nor settable
-- by tenant roles (no privileges on the sequences), so a tenant can read its own
-- fingerprint but cannot compute the fingerprint of any other value (md5
-- here needs second-preimage resistance under a secret prefix, which it
-- still has). The signed reader recomputes the fingerprint (two currval
-- calls and one md5, no key) and falls back to the full check when it
-- differs. Every prime first clears the fingerprint, so the one a server
-- connection shows a tenant is always that tenant's own: a previous
-- tenant's fingerprint (transaction pooling) is as secret as its MAC.
-- DISCARD SEQUENCES would drop the seed while the fingerprint setting
-- stays (the reader would then fail with "currval ... is not yet defined"),
-- so the SQL guard refuses it when signing is on.
DO $seed$
BEGIN
    -- UNLOGGED (PostgreSQL 15+): setting the seed writes no WAL and
    -- assigns no transaction id. Only currval() is used, which is
    -- session-local, so crash recovery resetting them does no harm.
    IF pg_catalog.current_setting('server_version_num')::int >= 150000 THEN
        CREATE UNLOGGED SEQUENCE IF NOT EXISTS multigres.context_seed_a AS bigint MINVALUE -9223372036854775808;
        CREATE UNLOGGED SEQUENCE IF NOT EXISTS multigres.context_seed_b AS bigint MINVALUE -9223372036854775808;
    ELSE
        CREATE SEQUENCE IF NOT EXISTS multigres.context_seed_a AS bigint MINVALUE -9223372036854775808;
        CREATE SEQUENCE IF NOT EXISTS multigres.context_seed_b AS bigint MINVALUE -9223372036854775808;
    END IF;
END
$seed$;
REVOKE ALL ON SEQUENCE multigres.context_seed_a, multigres.context_seed_b FROM PUBLIC;

-- context_verify(var, val): val when multigres_mac.v<md5(var)> is the MAC
-- of (var, backend pid, val), else NULL. PL/pgSQL rather than SQL: a
-- SECURITY DEFINER function with a SET clause cannot be inlined, and
-- PostgreSQL re-plans a non-inlined SQL function body on every statement,
-- while PL/pgSQL keeps its plans for the session. PARALLEL RESTRICTED:
-- pg_backend_pid() differs in a parallel worker.
CREATE OR REPLACE FUNCTION multigres.context_verify(var text, val text)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k multigres.context_key%ROWTYPE;
BEGIN
    IF val IS NULL OR val = '' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO k FROM multigres.context_key WHERE enabled;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF current_setting('multigres_mac.v' || md5(lower(var)), true)
       = encode(sha256(k.opad || sha256(k.ipad ||
           convert_to(lower(var) || '|' || pg_backend_pid()::text || '|' || val, 'UTF8'))), 'hex') THEN
        RETURN val;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION multigres.context_verify(text, text) FROM PUBLIC;

-- context_prime(var) clears the fingerprint; then, with the native reader,
-- context_remember verifies and keeps the value (and prime is done), and
-- otherwise it sets the fingerprint if the MAC verifies. Anyone may call
-- it: it only ever records a verified value. In
-- a read-only transaction (or on a standby) it cannot set the seed the
-- first time, and the reader then verifies in full. The EXCEPTION block
-- (a subtransaction) is only on this once-per-context-change path.
CREATE OR REPLACE FUNCTION multigres.context_prime(var text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fp_name text := 'multigres_fp.' || var;
    val text;
    a bigint;
    b bigint;
    r bytea;
BEGIN
    -- Clear only a fingerprint that exists, and create one only for a
    -- verified value: calls with arbitrary names (anyone may call this)
    -- must not pile up placeholder settings on a pooled connection.
    IF current_setting(fp_name, true) IS NOT NULL THEN
        PERFORM set_config(fp_name, '', false);
    END IF;
    -- The native reader verifies and keeps the value itself (or forgets
    -- the previous tenant's) and needs no fingerprint; the portable
    -- stand-in returns false.
    IF multigres.context_remember(var) THEN
        RETURN;
    END IF;
    val := multigres.context_verify(var, current_setting(var, true));
    IF val IS NULL THEN
        RETURN;
    END IF;
    BEGIN
        a := currval('multigres.context_seed_a');
        b := currval('multigres.context_seed_b');
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        IF current_setting('transaction_read_only') = 'on' THEN
            RETURN;
        END IF;
        -- 128 bits from two v4 UUIDs (244 random bits).
        r := decode(md5(gen_random_uuid()::text || gen_random_uuid()::text), 'hex');
        a := setval('multigres.context_seed_a', ('x' || encode(substr(r, 1, 8), 'hex'))::bit(64)::bigint);
        b := setval('multigres.context_seed_b', ('x' || encode(substr(r, 9, 8), 'hex'))::bit(64)::bigint);
        -- setval(..., true) also wrote the seed into the sequence's tuple,
        -- where the owner, pg_read_all_data, pg_dump and (logged, before
        -- PostgreSQL 15) standbys would see it; currval() keeps it for this
        -- session only, and setval(..., false) does not touch currval().
        PERFORM setval('multigres.context_seed_a', 1, false), setval('multigres.context_seed_b', 1, false);
    END;
    PERFORM set_config(fp_name, md5(a::text || ':' || b::text || '|' || var || '|' || val), false);
END
$$;
REVOKE ALL ON FUNCTION multigres.context_prime(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION multigres.context_prime(text) TO PUBLIC;

-- install_context_readers(signed, native) defines the two readers and
-- returns which form it installed: 'unsigned', 'native' or 'plpgsql'
-- (multigres.context_reader() tells later).
--
-- Unsigned, multigres_context(var) reads a context variable fail-closed:
-- NULL when the variable was never set (missing_ok => true, so no error) or
-- is the empty string (what RESET and a custom GUC's placeholder leave
-- behind). A policy comparing a column with NULL is never true, so a
-- connection without context sees zero rows instead of an error or
-- everything. It is LANGUAGE sql, STABLE and without SET clauses or SECURITY
-- DEFINER so that the planner inlines it; policies additionally wrap it as
-- (SELECT ...) to make it an InitPlan evaluated once per statement, not once
-- per row. current_tenant_id() is the same for app.current_tenant_id,
-- spelled out so that it inlines in one step.
--
-- Signed, with native (the default) and a server that can load the
-- multigres_context library (ext/multigres_context.c; installed in the
-- server's $libdir or on dynamic_library_path, and only a superuser may
-- declare C functions): multigres_context is that library's C function,
-- SECURITY DEFINER like the portable form. It returns the setting when it
-- and its MAC setting are exactly what context_remember verified and kept
-- in this backend's private memory, else what context_verify says. About 1 µs a
-- statement, where the PL/pgSQL form costs 6 to 10 under load
-- (docs/benchmarks.md). When the library cannot be declared, the portable
-- form is installed instead and a NOTICE says why.
--
-- Signed and portable: multigres_context is PL/pgSQL, SECURITY DEFINER (for
-- the seed), and checks the fingerprint context_prime left, falling back to
-- context_verify; still evaluated once per statement through the policies'
-- InitPlan. It has no SET search_path clause (that alone cost about 1 µs
-- per call, a third of the rest), so every function, operator and type in
-- it is schema-qualified: nothing a role could create in a schema on its
-- search_path is ever picked up. Few, small expressions: PL/pgSQL builds
-- each expression's state once per transaction, so with one-statement
-- transactions once per call. The fingerprint uses var as given (the
-- proxy passes the configured, lower-case name); another spelling only
-- takes the full check.
--
-- PARALLEL RESTRICTED (both signed forms): the remembered value, the seed
-- and pg_backend_pid() are the leader's.
DROP FUNCTION IF EXISTS multigres.install_context_readers(boolean);
CREATE OR REPLACE FUNCTION multigres.install_context_readers(signed boolean, native boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
AS $install$
DECLARE
    form text := 'unsigned';
BEGIN
    -- context_remember(var) is where the native reader verifies var's
    -- setting and keeps it. The portable stand-in keeps nothing and returns
    -- false, and prime then leaves the fingerprint instead. It goes in
    -- first, so that a failed native install leaves it. The native form
    -- keeps only MAC-verified values, whoever calls it; EXECUTE is revoked
    -- from PUBLIC all the same (only prime calls it).
    DROP FUNCTION IF EXISTS multigres.context_remember(text, text);
    CREATE OR REPLACE FUNCTION multigres.context_remember(var text)
    RETURNS boolean LANGUAGE sql VOLATILE AS $$ SELECT false $$;
    IF signed AND native THEN
        BEGIN
            CREATE OR REPLACE FUNCTION multigres.context_remember(var text)
            RETURNS boolean
            LANGUAGE c VOLATILE PARALLEL UNSAFE
            AS 'multigres_context', 'multigres_context_remember';
            CREATE OR REPLACE FUNCTION public.multigres_context(var text)
            RETURNS text
            LANGUAGE c STABLE PARALLEL RESTRICTED SECURITY DEFINER
            AS 'multigres_context', 'multigres_context_get';
            form := 'native';
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'multigres: native context reader not installed (%); using the PL/pgSQL reader', SQLERRM
                USING HINT = 'Install multigres_context.so in the server''s $libdir and run multigres init as a superuser (docs/operations.md, "Native context reader").';
        END;
    END IF;
    REVOKE ALL ON FUNCTION multigres.context_remember(text) FROM PUBLIC;
    IF signed AND form <> 'native' THEN
        form := 'plpgsql';
        CREATE OR REPLACE FUNCTION public.multigres_context(var pg_catalog.text)
        RETURNS pg_catalog.text
        LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
        AS $$
        DECLARE
            val pg_catalog.text := pg_catalog.current_setting(var, true);
            fp pg_catalog.text := pg_catalog.current_setting('multigres_fp.' OPERATOR(pg_catalog.||) var, true);
        BEGIN
            RETURN CASE
                WHEN val IS NULL OR val OPERATOR(pg_catalog.=) '' THEN NULL
                WHEN fp IS NULL OR fp OPERATOR(pg_catalog.=) '' THEN multigres.context_verify(var, val)
                WHEN fp OPERATOR(pg_catalog.=) pg_catalog.md5(
                       pg_catalog.currval('multigres.context_seed_a'::pg_catalog.regclass)::pg_catalog.text
                       OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.currval('multigres.context_seed_b'::pg_catalog.regclass)::pg_catalog.text
                       OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) var OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) val)
                    THEN val
                ELSE multigres.context_verify(var, val)
            END;
        END
        $$;
    ELSIF NOT signed THEN
        CREATE OR REPLACE FUNCTION public.multigres_context(var text)
        RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
        AS $$ SELECT NULLIF(pg_catalog.current_setting(var, true), '') $$;
    END IF;
    IF signed THEN
        CREATE OR REPLACE FUNCTION public.current_tenant_id()
        RETURNS text
        LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY INVOKER
        AS $$ SELECT public.multigres_context('app.current_tenant_id') $$;
    ELSE
        CREATE OR REPLACE FUNCTION public.current_tenant_id()
        RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
        AS $$ SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '') $$;
    END IF;
    COMMENT ON FUNCTION public.multigres_context(text) IS
        'fail-closed reader of a context variable: NULL when unset or empty (or unsigned, with context signing)';
    COMMENT ON FUNCTION public.current_tenant_id() IS
        'fail-closed current tenant: app.current_tenant_id, NULL when unset or empty (or unsigned, with context signing)';
    RETURN form;
END
$install$;
REVOKE ALL ON FUNCTION multigres.install_context_readers(boolean, boolean) FROM PUBLIC;

-- context_reader() names the reader in force: 'unsigned', 'native' or
-- 'plpgsql' (multigres init prints it; docs/operations.md).
CREATE OR REPLACE FUNCTION multigres.context_reader()
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN NOT coalesce((SELECT enabled FROM multigres.context_key), false) THEN 'unsigned'
        WHEN l.lanname = 'c' THEN 'native'
        ELSE 'plpgsql'
    END
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
    WHERE p.oid = pg_catalog.to_regprocedure('public.multigres_context(text)')
$$;
REVOKE ALL ON FUNCTION multigres.context_reader() FROM PUBLIC;

-- Re-running the setup keeps whichever mode is in force (and installs the
-- native reader when it has become available).
SELECT multigres.install_context_readers(coalesce((SELECT enabled FROM multigres.context_key), false));

-- grant_tenant_access grants USAGE on tbl's schema, DML on tbl, and USAGE
-- on the sequences it owns
-- (serial and identity columns), to every existing role in
-- multigres.tenant_roles. USAGE is enough for nextval/currval; SELECT on a
-- sequence is not granted because it would let tenants read last_value
-- without side effects, a (small) cross-tenant signal.
CREATE OR REPLACE FUNCTION multigres.grant_tenant_access(tbl regclass)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    r record;
    s record;
    n integer := 0;
BEGIN
    FOR r IN
        SELECT t.rolname FROM multigres.tenant_roles t
        WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles x WHERE x.rolname = t.rolname)
        ORDER BY t.rolname
    LOOP
        -- USAGE (never CREATE) on the table's schema, so a table outside
        -- public is reachable without a separate grant.
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %I',
            (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = tbl), r.rolname);
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', tbl, r.rolname);
        FOR s IN
            SELECT d.objid::regclass AS seq
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_class c ON c.oid = d.objid AND c.relkind = 'S'
            WHERE d.classid = 'pg_catalog.pg_class'::regclass
              AND d.refclassid = 'pg_catalog.pg_class'::regclass
              AND d.refobjid = tbl
              AND d.deptype IN ('a', 'i')
        LOOP
            EXECUTE pg_catalog.format('GRANT USAGE ON SEQUENCE %s TO %I', s.seq, r.rolname);
        END LOOP;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION multigres.grant_tenant_access(regclass) FROM PUBLIC;

-- multigres_protect(tbl, col, var) puts a table under tenant isolation:
--
--   * tbl may be schema-qualified and quoted ('app."My Table"'); it is
--     resolved with the caller's search_path, like any table name.
--   * The policy compares col with the context variable cast to col's real
--     type (text, varchar, uuid, bigint, integer, domains, ...), so the
--     comparison uses the column's own equality operator and an index on col
--     stays usable. The type is written without its typmod: an explicit cast
--     to varchar(n) would silently truncate the setting, so a long value could
--     match a shorter tenant id.
--   * The right-hand side is (SELECT ...): an InitPlan evaluated once per
--     statement, which an index scan takes as its key. A setting that is not
--     valid for the type (e.g. 'acme' for a uuid column) raises an error:
--     still fail-closed.
--   * The policy is FOR ALL TO PUBLIC with the same WITH CHECK, so every role
--     without BYPASSRLS (including tenant roles added later, and the table
--     owner, because RLS is FORCEd) only reads and writes its own tenant's
--     rows; an INSERT or UPDATE to another tenant fails with 42501.
--   * DML and sequence USAGE are granted to the tenant roles.
--   * Idempotent: the policy multigres_tenant_isolation is dropped and
--     re-created, so running it again (e.g. after adding a tenant role, or to
--     switch the column) leaves exactly one policy.
--
-- It refuses tables owned by a tenant role: an owner can ALTER TABLE ...
-- DISABLE ROW LEVEL SECURITY, so such a table cannot be protected.
-- SECURITY INVOKER: the caller must own the table (or be superuser), as for
-- any ALTER TABLE.
-- Other overloads (e.g. a two-argument version from an earlier install)
-- would make the guide's two-argument call ambiguous, so they go. Nothing
-- depends on these functions; policies reference multigres_context only.
DROP FUNCTION IF EXISTS public.multigres_protect(text);
DROP FUNCTION IF EXISTS public.multigres_protect(text, text);
DROP FUNCTION IF EXISTS public.multigres_protect(regclass);
DROP FUNCTION IF EXISTS public.multigres_protect(regclass, text);
DROP FUNCTION IF EXISTS public.multigres_protect(regclass, text, text);
DROP FUNCTION IF EXISTS public.multigres_unprotect(regclass);
CREATE OR REPLACE FUNCTION public.multigres_protect(
    tbl text,
    col text DEFAULT 'tenant_id',
    var text DEFAULT 'app.current_tenant_id')
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    rel regclass;
    kind "char";
    owner name;
    typ text;
    expr text;
    part regclass;
BEGIN
    IF tbl IS NULL OR col IS NULL OR var IS NULL THEN
        RAISE EXCEPTION 'multigres_protect: table, column and variable must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    rel := pg_catalog.to_regclass(tbl);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'multigres_protect: table "%" does not exist', tbl
            USING ERRCODE = 'undefined_table',
                  HINT = 'Create the table first; qualify it with its schema (myschema.mytable) if that schema is not on the search_path, and double-quote names with upper case.';
    END IF;
    SELECT c.relkind, pg_catalog.pg_get_userbyid(c.relowner) INTO kind, owner
    FROM pg_catalog.pg_class c WHERE c.oid = rel;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'multigres_protect: "%" is not a table', rel
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Row level security applies to ordinary and partitioned tables only.';
    END IF;
    IF EXISTS (SELECT 1 FROM multigres.tenant_roles t WHERE t.rolname = owner) THEN
        RAISE EXCEPTION 'multigres_protect: table % is owned by tenant role "%"', rel, owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A table owner can disable row level security. Change the owner first: ALTER TABLE ... OWNER TO <admin role>.';
    END IF;
    SELECT pg_catalog.format_type(a.atttypid, NULL) INTO typ
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'multigres_protect: column "%" does not exist in table %', col, rel
            USING ERRCODE = 'undefined_column',
                  HINT = 'Pass the tenant column as the second argument: SELECT multigres_protect(''mytable'', ''tenant_id'');';
    END IF;

    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        -- Citus sends a distributed table's policies to its shards as
        -- deparsed SQL and cannot deparse a sub-select there: the reader is
        -- called directly (STABLE, so an index on col still serves it).
        expr := pg_catalog.format('%I = public.multigres_context(%L)::%s', col, var, typ);
    ELSE
        expr := pg_catalog.format('%I = (SELECT public.multigres_context(%L)::%s)', col, var, typ);
    END IF;
    -- Existing partitions get the same policy too (without grants): queries
    -- through the parent use the parent's policy, and a partition queried
    -- directly needs its own grant, which multigres never gives; protecting
    -- them anyway keeps a later manual GRANT on a partition from opening it.
    -- Partitions created later are not covered; run multigres_protect again.
    FOR part IN
        SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t
        JOIN pg_catalog.pg_class c ON c.oid = t.relid
        WHERE c.relkind IN ('r', 'p')
        UNION
        SELECT rel
    LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                   WHERE p.polrelid = part AND p.polname = 'multigres_tenant_isolation') THEN
            EXECUTE pg_catalog.format('DROP POLICY multigres_tenant_isolation ON %s', part);
        END IF;
        EXECUTE pg_catalog.format(
            'CREATE POLICY multigres_tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)',
            part, expr, expr);
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', part);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', part);
    END LOOP;
    PERFORM multigres.grant_tenant_access(rel);
    IF NOT EXISTS (SELECT 1 FROM multigres.tenant_roles) THEN
        RAISE NOTICE 'multigres_protect: no tenant roles configured; no privileges granted'
            USING HINT = 'Run multigres init, or GRANT SELECT, INSERT, UPDATE, DELETE yourself.';
    END IF;
    RETURN pg_catalog.format('protected %s on %I (%s) = %s', rel, col, typ, var);
END
$$;
COMMENT ON FUNCTION public.multigres_protect(text, text, text) IS
    'enable and force RLS on a table with a fail-closed tenant policy, and grant DML to the tenant roles';

-- multigres_unprotect(tbl) drops the multigres policy and, when no other
-- policy remains on the table, disables and un-forces row level security.
-- If other policies remain, RLS stays on so they keep being enforced.
-- Grants are left in place: after unprotect, tenant roles can read and write
-- every row of the table. Revoke them yourself if that is not wanted.
CREATE OR REPLACE FUNCTION public.multigres_unprotect(tbl text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    rel regclass;
    part regclass;
    kept boolean := false;
BEGIN
    rel := pg_catalog.to_regclass(tbl);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'multigres_unprotect: table "%" does not exist', tbl
            USING ERRCODE = 'undefined_table',
                  HINT = 'Qualify the table with its schema if that schema is not on the search_path.';
    END IF;
    FOR part IN
        SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t
        JOIN pg_catalog.pg_class c ON c.oid = t.relid
        WHERE c.relkind IN ('r', 'p')
        UNION
        SELECT rel
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                       WHERE p.polrelid = part AND p.polname = 'multigres_tenant_isolation') THEN
            CONTINUE;
        END IF;
        EXECUTE pg_catalog.format('DROP POLICY multigres_tenant_isolation ON %s', part);
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = part) THEN
            RAISE NOTICE 'multigres_unprotect: other policies remain on %; row level security stays enabled', part;
            kept := true;
            CONTINUE;
        END IF;
        EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', part);
        EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', part);
    END LOOP;
    IF kept THEN
        RETURN pg_catalog.format('unprotected %s (row level security kept for other policies)', rel);
    END IF;
    RETURN pg_catalog.format('unprotected %s', rel);
END
$$;
COMMENT ON FUNCTION public.multigres_unprotect(text) IS
    'drop the multigres policy and disable RLS; grants are kept';

-- multigres.citus_kind(rel) is how Citus distributes a table: 'distributed'
-- (hash or range shards, or one shard in a colocation group), 'reference' (a
-- copy on every node) or 'local' (in Citus' metadata, on the coordinator
-- only); NULL for a table Citus does not know, or without Citus.
CREATE OR REPLACE FUNCTION multigres.citus_kind(rel regclass)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    k text;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT CASE WHEN p.partmethod <> ''n'' THEN ''distributed'' WHEN p.repmodel = ''t'' THEN ''reference'' '
            'WHEN p.colocationid <> 0 THEN ''distributed'' ELSE ''local'' END '
            'FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = $1'
        INTO k USING rel;
    RETURN k;
END
$$;

-- multigres_status() lists every ordinary and partitioned table in every
-- non-system schema (not only public). policies counts the policies on that
-- very table (pg_policy.polrelid = the table's oid). protected means RLS is
-- enabled and forced and the multigres policy is present. citus is how
-- Citus distributes the table (multigres.citus_kind), NULL without Citus.
-- Dropped first so that a changed row type installs cleanly.
DROP FUNCTION IF EXISTS public.multigres_status();
CREATE FUNCTION public.multigres_status()
RETURNS TABLE(schema_name name, table_name name, rls_enabled boolean, rls_forced boolean,
              policies integer, multigres_policy boolean, protected boolean, citus text)
LANGUAGE sql STABLE
AS $$
    SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity,
           p.n, p.mg,
           c.relrowsecurity AND c.relforcerowsecurity AND p.mg,
           multigres.citus_kind(c.oid)
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        SELECT pg_catalog.count(*)::integer AS n,
               pg_catalog.bool_or(pol.polname = 'multigres_tenant_isolation') IS TRUE AS mg
        FROM pg_catalog.pg_policy pol
        WHERE pol.polrelid = c.oid
    ) p
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname !~ '^pg_'
      AND n.nspname NOT IN ('information_schema', 'multigres')
    ORDER BY 1, 2
$$;
COMMENT ON FUNCTION public.multigres_status() IS
    'row level security state of every table in every non-system schema';

-- multigres.user_lookup(username) is the auth_query function: it returns the
-- password verifier (SCRAM-SHA-256, or md5) of a role from pg_authid, which
-- only superusers can read. The rules are PgBouncer's default auth_query:
-- nothing for a role that cannot log in or whose password has expired.
--
-- SECURITY DEFINER runs it as its owner, the superuser that ran init; the
-- fixed search_path stops a caller from substituting objects. EXECUTE is
-- revoked from PUBLIC and granted only to the auth user by multigres init.
CREATE OR REPLACE FUNCTION multigres.user_lookup(username text)
RETURNS TABLE(usename name, passwd text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.rolname, a.rolpassword
    FROM pg_catalog.pg_authid a
    WHERE a.rolname = username
      AND a.rolcanlogin
      AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now())
$$;
REVOKE ALL ON FUNCTION multigres.user_lookup(text) FROM PUBLIC;
COMMENT ON FUNCTION multigres.user_lookup(text) IS
    'auth_query for multigres: SCRAM verifier of a login role; EXECUTE for the auth user only';

-- Hardening (multigres init --harden). The SQL guard in the proxy cannot see
-- inside objects that run SQL later (a pg_temp function that calls
-- set_config, a view, a trigger), so tenant roles must not be able to create
-- any. multigres.apply_hardening() does, in the current database:
--
--   * REVOKE TEMPORARY and CREATE ON DATABASE from PUBLIC and the tenant
--     roles. PUBLIC holds TEMPORARY by default and a role cannot be denied a
--     privilege PUBLIC holds, so the revoke from PUBLIC is required. Trade-off:
--     every role that is not the database owner or a superuser loses temporary
--     tables; GRANT TEMPORARY ON DATABASE ... TO the roles that need them.
--   * REVOKE CREATE on every non-system schema from PUBLIC and the tenant
--     roles (PostgreSQL 15 already does so for public on new clusters, not on
--     upgraded ones).
--   * Hide other sessions' query text: all tenants share one role and
--     PostgreSQL shows a role its own sessions' queries. EXECUTE on
--     pg_stat_get_activity (behind pg_stat_activity, pg_stat_ssl,
--     pg_stat_gssapi) and pg_stat_get_backend_activity is revoked from PUBLIC
--     and granted to pg_read_all_stats. Trade-off: roles outside
--     pg_read_all_stats/pg_monitor get "permission denied" from these views.
--   * Hide a shared server connection's statements: EXECUTE on
--     pg_prepared_statement, pg_cursor, pg_prepared_xact and pg_lock_status
--     (behind pg_prepared_statements, pg_cursors, pg_prepared_xacts and
--     pg_locks) is revoked from PUBLIC and granted to pg_read_all_stats.
--   * Stop backends signalling each other: a role may always cancel or
--     terminate backends of its own role, i.e. every other tenant's. EXECUTE
--     on pg_cancel_backend and pg_terminate_backend is revoked from PUBLIC and
--     granted to pg_signal_backend. Cancelling through the protocol's
--     CancelRequest (which the proxy maps per client) is unaffected.
--
-- Function privileges live in each database's pg_proc, so this applies to
-- the database it runs in; a tenant role that can connect to another
-- database is unhardened there (multigres_hardening_status reports it).
CREATE OR REPLACE FUNCTION multigres.apply_hardening()
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    grantees text;
    r record;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('%I', t.rolname), ', ' ORDER BY t.rolname)
    INTO grantees
    FROM multigres.tenant_roles t
    WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles x WHERE x.rolname = t.rolname);
    grantees := 'PUBLIC' || COALESCE(', ' || grantees, '');

    EXECUTE pg_catalog.format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM %s',
                              pg_catalog.current_database(), grantees);
    FOR r IN
        SELECT n.nspname FROM pg_catalog.pg_namespace n
        WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM %s', r.nspname, grantees);
        -- TRUNCATE ignores row level security (it would empty every
        -- tenant's rows) and TRIGGER lets a role attach code to a table.
        EXECUTE pg_catalog.format('REVOKE TRUNCATE, TRIGGER ON ALL TABLES IN SCHEMA %I FROM %s', r.nspname, grantees);
    END LOOP;

    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer), '
        'pg_catalog.pg_stat_get_backend_activity(integer) FROM %s', grantees);
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer),
        pg_catalog.pg_stat_get_backend_activity(integer) TO pg_read_all_stats;

    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint), '
        'pg_catalog.pg_cancel_backend(integer) FROM %s', grantees);
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint),
        pg_catalog.pg_cancel_backend(integer) TO pg_signal_backend;

    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION multigres.user_lookup(text) FROM %s', grantees);

    -- A session's own prepared statements and cursors are other tenants'
    -- in transaction pooling, where tenants share server connections:
    -- pg_prepared_statements and pg_cursors would show their SQL text with
    -- literals. pg_prepared_xacts shows every prepared transaction's gid,
    -- and pg_locks the advisory-lock keys of every session. Revoked from
    -- PUBLIC and granted to pg_read_all_stats (pg_monitor keeps them).
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_prepared_statement(), '
        'pg_catalog.pg_cursor(), pg_catalog.pg_prepared_xact(), pg_catalog.pg_lock_status() FROM %s', grantees);
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_prepared_statement(), pg_catalog.pg_cursor(),
        pg_catalog.pg_prepared_xact(), pg_catalog.pg_lock_status() TO pg_read_all_stats;

    -- Large objects are not covered by row level security and a tenant's
    -- objects belong to the shared tenant role, so any tenant could read or
    -- unlink another's by OID (pg_largeobject_metadata lists them).
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION pg_catalog.lo_creat(integer), pg_catalog.lo_create(oid), '
        'pg_catalog.lo_from_bytea(oid, bytea), pg_catalog.lo_open(oid, integer), pg_catalog.lo_get(oid), '
        'pg_catalog.lo_get(oid, bigint, integer), pg_catalog.lo_put(oid, bigint, bytea), '
        'pg_catalog.lo_unlink(oid) FROM %s', grantees);

    -- Extensions that reach across tenants, when installed in this database:
    -- pg_stat_statements shows a role the statements of its own role, i.e.
    -- of every tenant; dblink opens new connections that bypass the proxy.
    FOR r IN
        SELECT p.oid::regprocedure AS fn, p.proname
        FROM pg_catalog.pg_proc p
        WHERE p.proname = 'pg_stat_statements' OR p.proname ~ '^dblink'
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', r.fn, grantees);
        IF r.proname = 'pg_stat_statements' THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', r.fn);
        END IF;
    END LOOP;

    -- Citus, when installed here: functions that run SQL given as text on
    -- the workers or the coordinator (where the guard cannot see it, as the
    -- tenant role, with a context of the tenant's choosing), and the views
    -- of every node's sessions and statements.
    FOR r IN
        SELECT p.oid::regprocedure AS fn
        FROM pg_catalog.pg_proc p
        WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus')
          AND p.pronamespace = 'pg_catalog'::regnamespace
          AND (p.proname ~ '^run_command_on_'
               OR p.proname IN ('master_run_on_worker', 'citus_run_local_command', 'citus_stat_activity',
                                'citus_dist_stat_activity', 'citus_worker_stat_activity', 'get_all_active_transactions',
                                'get_global_active_transactions', 'citus_stat_statements', 'citus_query_stats'))
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', r.fn, grantees);
    END LOOP;

    -- Built-ins that execute SQL given as text run it where the SQL guard
    -- cannot see it (ts_rewrite(tsquery, text) and ts_stat run a query;
    -- the *_to_xml family runs a query or reads a cursor). Revoking them by
    -- OID holds whatever spelling reaches them, including attribute
    -- notation such as ('...'::text).ts_stat.
    FOR r IN
        SELECT p.oid::regprocedure AS fn
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace
          AND (p.proname IN ('ts_stat', 'query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema',
                             'cursor_to_xml', 'cursor_to_xmlschema')
               OR (p.proname = 'ts_rewrite' AND p.pronargs = 2))
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', r.fn, grantees);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION multigres.apply_hardening() FROM PUBLIC;

-- multigres_hardening_status(roles) reports, for each tenant role (the given
-- ones, or multigres.tenant_roles when NULL), whether each hardening item
-- holds in this database. It checks effective privileges with
-- has_*_privilege, so a grant through PUBLIC or through a role membership
-- counts as missing. Items:
--   attributes       NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION
--   memberships      member of no other role (SET ROLE cannot escalate)
--   temporary        no TEMPORARY on this database (no pg_temp functions/views)
--   create_database  no CREATE on this database (no new schemas)
--   create_schema    no CREATE on any schema
--   owns_objects     owns no schema, table, view, sequence or function here
--                    (an owner can disable row level security)
--   activity_query   cannot run pg_stat_get_activity/pg_stat_get_backend_activity
--   session_views    cannot read pg_prepared_statements, pg_cursors,
--                    pg_prepared_xacts or pg_locks (their functions)
--   signal_backend   cannot run pg_cancel_backend/pg_terminate_backend
--   user_lookup      cannot run multigres.user_lookup
--   table_privileges holds TRUNCATE (bypasses RLS) or TRIGGER on no table
--   large_objects    cannot create, open, read, write or unlink large objects
--   statement_stats  cannot run pg_stat_statements (ok when not installed)
--   dblink           cannot run dblink functions (ok when not installed)
-- advisory marks the items multigres init does not change because fixing
-- them needs an operator's decision (rls_views, other_databases).
--   rls_views        can read no view that bypasses row level security (not
--                    security_invoker, owner is superuser or BYPASSRLS) and
--                    no materialized view (they have no RLS); report only
--   other_databases  cannot connect to another database (not changed by
--                    init: revoke CONNECT there or restrict databases in the proxy)
DROP FUNCTION IF EXISTS public.multigres_hardening_status(text[]);
CREATE FUNCTION public.multigres_hardening_status(roles text[] DEFAULT NULL)
RETURNS TABLE(item text, ok boolean, detail text, advisory boolean)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    rn text;
    rid oid;
    a record;
    lst text;
BEGIN
    IF roles IS NULL THEN
        SELECT pg_catalog.array_agg(t.rolname::text ORDER BY t.rolname) INTO roles FROM multigres.tenant_roles t;
    END IF;
    IF roles IS NULL OR pg_catalog.cardinality(roles) = 0 THEN
        item := 'tenant_roles'; ok := false; detail := 'no tenant roles configured'; advisory := false;
        RETURN NEXT;
        RETURN;
    END IF;
    FOREACH rn IN ARRAY roles LOOP
        advisory := false;
        SELECT r.oid INTO rid FROM pg_catalog.pg_roles r WHERE r.rolname = rn;
        IF rid IS NULL THEN
            item := rn || ': exists'; ok := false; detail := 'role does not exist';
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT * INTO a FROM pg_catalog.pg_roles r WHERE r.oid = rid;
        lst := pg_catalog.concat_ws(', ',
            CASE WHEN a.rolsuper THEN 'SUPERUSER' END,
            CASE WHEN a.rolbypassrls THEN 'BYPASSRLS' END,
            CASE WHEN a.rolcreatedb THEN 'CREATEDB' END,
            CASE WHEN a.rolcreaterole THEN 'CREATEROLE' END,
            CASE WHEN a.rolreplication THEN 'REPLICATION' END);
        item := rn || ': attributes'; ok := lst = '';
        detail := CASE WHEN ok THEN 'NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION' ELSE 'has ' || lst END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(pg_catalog.quote_ident(g.rolname), ', ' ORDER BY g.rolname) INTO lst
        FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
        WHERE m.member = rid;
        item := rn || ': memberships'; ok := lst IS NULL;
        detail := CASE WHEN ok THEN 'member of no other role' ELSE 'member of ' || lst END;
        RETURN NEXT;

        item := rn || ': temporary';
        ok := NOT pg_catalog.has_database_privilege(rid, pg_catalog.current_database(), 'TEMPORARY');
        detail := CASE WHEN ok THEN 'no TEMPORARY on database' ELSE 'can create temporary objects (pg_temp functions, views)' END;
        RETURN NEXT;

        item := rn || ': create_database';
        ok := NOT pg_catalog.has_database_privilege(rid, pg_catalog.current_database(), 'CREATE');
        detail := CASE WHEN ok THEN 'no CREATE on database' ELSE 'can create schemas' END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(pg_catalog.quote_ident(n.nspname), ', ' ORDER BY n.nspname) INTO lst
        FROM pg_catalog.pg_namespace n
        WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
          AND pg_catalog.has_schema_privilege(rid, n.oid, 'CREATE');
        item := rn || ': create_schema'; ok := lst IS NULL;
        detail := CASE WHEN ok THEN 'no CREATE on any schema' ELSE 'can create in ' || lst END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(o, ', ') INTO lst FROM (
            SELECT 'schema ' || pg_catalog.quote_ident(n.nspname) AS o
            FROM pg_catalog.pg_namespace n WHERE n.nspowner = rid
            UNION ALL
            SELECT c.oid::regclass::text FROM pg_catalog.pg_class c
            WHERE c.relowner = rid AND c.relnamespace <> pg_catalog.pg_my_temp_schema()
            UNION ALL
            SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p WHERE p.proowner = rid
            ORDER BY 1 LIMIT 20) s;
        item := rn || ': owns_objects'; ok := lst IS NULL;
        detail := CASE WHEN ok THEN 'owns no schema, relation or function' ELSE 'owns ' || lst END;
        RETURN NEXT;

        item := rn || ': activity_query';
        ok := NOT pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')
          AND NOT pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_stat_get_backend_activity(integer)', 'EXECUTE');
        detail := CASE WHEN ok THEN 'cannot read other sessions'' query text'
                       ELSE 'can read other sessions'' query text via pg_stat_activity' END;
        RETURN NEXT;

        item := rn || ': session_views';
        ok := NOT (pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_prepared_statement()', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_cursor()', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_prepared_xact()', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_lock_status()', 'EXECUTE'));
        detail := CASE WHEN ok THEN 'cannot read pg_prepared_statements, pg_cursors, pg_prepared_xacts or pg_locks'
                       ELSE 'can read a shared server connection''s prepared statements or cursors, or other sessions'' locks' END;
        RETURN NEXT;

        item := rn || ': signal_backend';
        ok := NOT pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_terminate_backend(integer, bigint)', 'EXECUTE')
          AND NOT pg_catalog.has_function_privilege(rid, 'pg_catalog.pg_cancel_backend(integer)', 'EXECUTE');
        detail := CASE WHEN ok THEN 'cannot cancel or terminate backends'
                       ELSE 'can cancel or terminate other tenants'' backends' END;
        RETURN NEXT;

        item := rn || ': user_lookup';
        ok := NOT pg_catalog.has_function_privilege(rid, 'multigres.user_lookup(text)', 'EXECUTE');
        detail := CASE WHEN ok THEN 'cannot read password verifiers' ELSE 'can run multigres.user_lookup' END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(c.oid::regclass::text, ', ' ORDER BY 1) INTO lst
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
          AND pg_catalog.has_table_privilege(rid, c.oid, 'TRUNCATE, TRIGGER');
        item := rn || ': table_privileges'; ok := lst IS NULL;
        detail := CASE WHEN ok THEN 'no TRUNCATE or TRIGGER on any table'
                       ELSE 'has TRUNCATE or TRIGGER on ' || pg_catalog.left(lst, 200) END;
        RETURN NEXT;

        item := rn || ': large_objects';
        ok := NOT (pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_creat(integer)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_create(oid)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_from_bytea(oid, bytea)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_open(oid, integer)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_get(oid)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_get(oid, bigint, integer)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_put(oid, bigint, bytea)', 'EXECUTE')
                OR pg_catalog.has_function_privilege(rid, 'pg_catalog.lo_unlink(oid)', 'EXECUTE'));
        detail := CASE WHEN ok THEN 'cannot use large objects'
                       ELSE 'can use large objects, which row level security does not cover' END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(p.oid::regprocedure::text, ', ' ORDER BY 1) INTO lst
        FROM pg_catalog.pg_proc p
        WHERE p.proname = 'pg_stat_statements' AND pg_catalog.has_function_privilege(rid, p.oid, 'EXECUTE');
        item := rn || ': statement_stats'; ok := lst IS NULL;
        detail := CASE WHEN ok THEN 'cannot read pg_stat_statements (or not installed)'
                       ELSE 'can read other tenants'' statements via ' || lst END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(p.oid::regprocedure::text, ', ' ORDER BY 1) INTO lst
        FROM pg_catalog.pg_proc p
        WHERE p.proname ~ '^dblink' AND pg_catalog.has_function_privilege(rid, p.oid, 'EXECUTE');
        item := rn || ': dblink'; ok := lst IS NULL;
        detail := CASE WHEN ok THEN 'cannot run dblink (or not installed)'
                       ELSE 'can open connections that bypass the proxy: ' || pg_catalog.left(lst, 200) END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(c.oid::regclass::text, ', ' ORDER BY 1) INTO lst
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
        WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'multigres')
          AND pg_catalog.has_table_privilege(rid, c.oid, 'SELECT')
          -- extension views (pg_stat_statements) have items of their own
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          AND (c.relkind = 'm'
               OR (c.relkind = 'v' AND (o.rolsuper OR o.rolbypassrls)
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(c.reloptions) opt
                                   WHERE pg_catalog.lower(opt) IN ('security_invoker=true', 'security_invoker=on',
                                                                   'security_invoker=1', 'security_invoker=yes'))));
        -- The advisory items come last, so advisory stays true to the end of
        -- this role's rows and is reset at the next role.
        item := rn || ': rls_views'; ok := lst IS NULL; advisory := true;
        detail := CASE WHEN ok THEN 'reads no view or materialized view that bypasses row level security'
                       ELSE 'can read rows of every tenant through ' || lst
                            || ' (use security_invoker views owned by a role without BYPASSRLS; do not grant materialized views)' END;
        RETURN NEXT;

        SELECT pg_catalog.string_agg(pg_catalog.quote_ident(d.datname), ', ' ORDER BY d.datname) INTO lst
        FROM pg_catalog.pg_database d
        WHERE d.datallowconn AND d.datname <> pg_catalog.current_database()
          AND pg_catalog.has_database_privilege(rid, d.oid, 'CONNECT');
        item := rn || ': other_databases'; ok := lst IS NULL; advisory := true;
        detail := CASE WHEN ok THEN 'can connect to no other database'
                       ELSE 'can connect to ' || lst || ' (unhardened there): REVOKE CONNECT or restrict databases in the proxy' END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION public.multigres_hardening_status(text[]) IS
    'hardening items per tenant role: ok or missing, with detail';
