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
 *   multigres.context_remember(var, val)  records val as the MAC-verified
 *       value of var in this backend's memory (NULL forgets it) and returns
 *       true, which tells multigres.context_prime() that no fingerprint is
 *       needed. Only context_prime calls it, after it verified the MAC;
 *       EXECUTE is revoked from PUBLIC.
 *
 *   public.multigres_context(var)  returns the setting of var when it is
 *       exactly the remembered value, and otherwise whatever the full check
 *       multigres.context_verify(var, value) returns (NULL unless the MAC
 *       in the session verifies).
 *
 * Why this is safe: the remembered values live in this backend's private
 * memory, which no SQL can read or write; a tenant that changes the setting
 * (through a path the SQL guard missed) no longer matches it and falls to
 * the full MAC check, which it cannot pass for another tenant's value. A
 * pooled connection's next tenant is primed (and so remembered, or
 * forgotten when its MAC fails) before any of its statements run.
 *
 * Nothing here allocates outside the call's memory context except the
 * remembered strings (TopMemoryContext, replaced in place), and the number
 * of remembered variables is bounded.
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "catalog/pg_type.h"
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

Datum
multigres_context_remember(PG_FUNCTION_ARGS)
{
	char	   *name;
	int			slot;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	slot = find(name);
	if (slot < 0)
	{
		if (PG_ARGISNULL(1) || n_remembered == MAX_REMEMBERED)
			PG_RETURN_BOOL(true);
		slot = n_remembered;
		remembered[slot].name = MemoryContextStrdup(TopMemoryContext, name);
		remembered[slot].value = NULL;
		n_remembered++;
	}
	if (remembered[slot].value != NULL)
	{
		pfree(remembered[slot].value);
		remembered[slot].value = NULL;
	}
	if (!PG_ARGISNULL(1))
		remembered[slot].value = MemoryContextStrdup(TopMemoryContext,
													 text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_BOOL(true);
}

/*
 * full_check calls multigres.context_verify(var, val), looked up by its
 * qualified name on each call: this path is rare (a connection without a
 * prime, or a tampered setting), and a cached OID would go stale if the
 * setup were dropped and created again.
 */
static Datum
full_check(FunctionCallInfo fcinfo, text *var, const char *val)
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
	if (call->isnull)
		PG_RETURN_NULL();
	return result;
}

Datum
multigres_context_get(PG_FUNCTION_ARGS)
{
	text	   *var;
	char	   *name;
	const char *current;
	int			slot;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	var = PG_GETARG_TEXT_PP(0);
	name = text_to_cstring(var);
	current = GetConfigOption(name, true, true);
	if (current == NULL || current[0] == '\0')
		PG_RETURN_NULL();
	slot = find(name);
	if (slot >= 0 && remembered[slot].value != NULL &&
		strcmp(remembered[slot].value, current) == 0)
		PG_RETURN_TEXT_P(cstring_to_text(current));
	return full_check(fcinfo, var, current);
}
