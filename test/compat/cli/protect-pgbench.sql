-- Make pgbench's tables tenant tables, run as the superuser_bypass user
-- after `pgbench -i`: every existing row goes to tenant acme, new rows get
-- the connecting tenant (current_tenant_id()), and multigres_protect
-- installs the policy and the grants. See docs/clients.md.
\set ON_ERROR_STOP on
BEGIN;
ALTER TABLE pgbench_accounts ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';
ALTER TABLE pgbench_branches ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';
ALTER TABLE pgbench_tellers  ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';
ALTER TABLE pgbench_history  ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';
ALTER TABLE pgbench_accounts ALTER COLUMN tenant_id SET DEFAULT current_tenant_id();
ALTER TABLE pgbench_branches ALTER COLUMN tenant_id SET DEFAULT current_tenant_id();
ALTER TABLE pgbench_tellers  ALTER COLUMN tenant_id SET DEFAULT current_tenant_id();
ALTER TABLE pgbench_history  ALTER COLUMN tenant_id SET DEFAULT current_tenant_id();
SELECT multigres_protect('pgbench_accounts', 'tenant_id');
SELECT multigres_protect('pgbench_branches', 'tenant_id');
SELECT multigres_protect('pgbench_tellers', 'tenant_id');
SELECT multigres_protect('pgbench_history', 'tenant_id');
COMMIT;
