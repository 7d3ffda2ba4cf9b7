/*
 * multigres_context: the native reader of signed tenant context.
 *
 * With context_signing = on, every policy that multigres_protect() installs
 * calls public.multigres_context(var) once per statement. The portable
 * reader is PL/pgSQL (sql/setup.sql): it recomputes a per-session
 * fingerprint on every call, which under load costs about as much as a
 * one-row lookup's planning. This library replaces it with two C functions,
 * installed by `multigres init --context-signing` when the server can load
 * it (docs/operations.md, "Native context reader"):
 *
 *   multigres.context_remember(var)  runs the full MAC check
 *       (multigres.context_verify) on var's current setting and, when it
 *       passes, keeps the value and its MAC setting in this backend's
 *       private memory; when it fails, forgets what was kept for var. It
 *       records only values whose MAC verifies, whoever calls it, and
 *       returns true, which tells multigres.context_prime() (its only
 *       caller) that no fingerprint is needed.
 *
 *   public.multigres_context(var)  returns the setting of var when both it
 *       and var's MAC setting are exactly what was kept, and otherwise
 *       whatever the full check says (NULL unless the session's MAC for
 *       the value verifies).
 *
 * Why this is safe: the kept values live in memory that no SQL can read or
 * write. A tenant that changes the setting through a path the SQL guard
 * missed no longer matches, and cannot pass the full check for another
 * tenant's value. The MAC is part of the match, so a kept value can never
 * vouch for a setting that came with another MAC: after a switch that
 * rolled back (settings revert, this memory does not), or when a value was
 * kept under an earlier install, the reader takes the full check. A pooled
 * connection's next tenant is primed before any of its statements run, and
 * a failed prime forgets.
 *
 * Only the kept strings live outside the call's memory context
 * (TopMemoryContext, replaced in place), and their number is bounded.
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "catalog/pg_type.h"
#include "common/md5.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

/*
 * More context variables than this are still correct: the ones that do not
 * fit are never remembered and always take the full check.
 */
#define MAX_REMEMBERED 16

typedef struct Remembered
{
	char	   *name;			/* setting name, as the prime was given it */
	char	   *value;			/* verified value; NULL when forgotten */
	char	   *mac_name;		/* the setting that carries its MAC */
	char	   *mac;			/* that MAC, as it was when verified */
} Remembered;

static Remembered remembered[MAX_REMEMBERED];
static int	n_remembered = 0;

PG_FUNCTION_INFO_V1(multigres_context_remember);
PG_FUNCTION_INFO_V1(multigres_context_get);

/* find returns the slot of name (setting names are case-insensitive), or -1. */
static int
find(const char *name)
{
	int			i;

	for (i = 0; i < n_remembered; i++)
		if (pg_strcasecmp(remembered[i].name, name) == 0)
			return i;
	return -1;
}

static void
forget(int slot)
{
	Remembered *r = &remembered[slot];

	if (r->value != NULL)
		pfree(r->value);
	if (r->mac != NULL)
		pfree(r->mac);
	r->value = r->mac = NULL;
}

/*
 * setting returns a palloc'd copy of name's current value, or NULL when it
 * is unset or empty. (GetConfigOption's result points into the setting's
 * own storage, which catalog access below must not be able to disturb.)
 */
static char *
setting(const char *name)
{
	const char *v = GetConfigOption(name, true, true);

	return (v == NULL || v[0] == '\0') ? NULL : pstrdup(v);
}

/*
 * mac_setting_name returns the name of the setting that carries var's MAC:
 * multigres_mac.v<md5 of the lower-case name> (sql/sql.go ContextMACName,
 * setup.sql context_verify). Names are folded as ASCII; any other
 * spelling only misses the fast path.
 */
static char *
mac_setting_name(const char *var)
{
	char	   *lower = pstrdup(var);
	char		hex[33];
	const char *errstr = NULL;
	char	   *p;

	for (p = lower; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	if (!pg_md5_hash(lower, strlen(lower), hex, &errstr))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("multigres_context: md5 failed: %s", errstr ? errstr : "unknown error")));
	return psprintf("multigres_mac.v%s", hex);
}
/*
 * full_check returns multigres.context_verify(var, val): val when the
 * session's MAC for it verifies, else NULL. The function is looked up by
 * its qualified name on each call (no search_path involved): this path is
 * rare, and a cached OID would go stale if the setup were dropped and
 * created again.
 */
static text *
full_check(text *var, const char *val)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	List	   *fname = list_make2(makeString("multigres"), makeString("context_verify"));
	Oid			fn = LookupFuncName(fname, 2, argtypes, true);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(call, 2);
	Datum		result;

	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function multigres.context_verify(text, text) does not exist"),
				 errhint("This database's multigres setup is incomplete; run multigres init on it again.")));
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*call, &flinfo, 2, InvalidOid, NULL, NULL);
	call->args[0].value = PointerGetDatum(var);
	call->args[0].isnull = false;
	call->args[1].value = PointerGetDatum(cstring_to_text(val));
	call->args[1].isnull = false;
	result = FunctionCallInvoke(call);
	return call->isnull ? NULL : DatumGetTextPP(result);
}

Datum
multigres_context_remember(PG_FUNCTION_ARGS)
{
	text	   *var;
	char	   *name;
	char	   *value;
	char	   *mac_name;
	char	   *mac;
	int			slot;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	var = PG_GETARG_TEXT_PP(0);
	name = text_to_cstring(var);
	slot = find(name);
	value = setting(name);
	mac_name = slot >= 0 ? remembered[slot].mac_name : mac_setting_name(name);
	mac = setting(mac_name);
	if (value == NULL || mac == NULL || full_check(var, value) == NULL)
	{
		if (slot >= 0)
			forget(slot);
		PG_RETURN_BOOL(true);
	}
	if (slot < 0)
	{
		if (n_remembered == MAX_REMEMBERED)
			PG_RETURN_BOOL(true);
		slot = n_remembered;
		remembered[slot].name = MemoryContextStrdup(TopMemoryContext, name);
		remembered[slot].mac_name = MemoryContextStrdup(TopMemoryContext, mac_name);
		remembered[slot].value = remembered[slot].mac = NULL;
		n_remembered++;
	}
	forget(slot);
	remembered[slot].value = MemoryContextStrdup(TopMemoryContext, value);
	remembered[slot].mac = MemoryContextStrdup(TopMemoryContext, mac);
	PG_RETURN_BOOL(true);
}

Datum
multigres_context_get(PG_FUNCTION_ARGS)
{
	text	   *var;
	char	   *name;
	char	   *current;
	text	   *checked;
	int			slot;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	var = PG_GETARG_TEXT_PP(0);
	name = text_to_cstring(var);
	current = setting(name);
	if (current == NULL)
		PG_RETURN_NULL();
	slot = find(name);
	if (slot >= 0 && remembered[slot].value != NULL &&
		strcmp(remembered[slot].value, current) == 0)
	{
		const char *mac = GetConfigOption(remembered[slot].mac_name, true, true);

		if (mac != NULL && strcmp(remembered[slot].mac, mac) == 0)
			PG_RETURN_TEXT_P(cstring_to_text(current));
	}
	checked = full_check(var, current);
	if (checked == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(checked);
}
