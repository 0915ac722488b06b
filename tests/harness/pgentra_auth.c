/*
 * pgentra_auth: a server module for the test harness's PostgreSQL (shared_preload_libraries).
 *
 * Token roles log in through PostgreSQL's `ldap` method, which asks the identity emulator
 * whether the password is a token it accepts (see pg.sh and crates/pgentra-emulator/src/ldap.rs).
 * PostgreSQL reports a failed LDAP login as SQLSTATE 28000 "LDAP authentication failed for
 * user", while a refused token on Azure, like any refused password, is 28P01 (invalid_password)
 * "password authentication failed for user". Clients decide on that code (and libpq-based
 * ones, which get no SQLSTATE for a failed connection, on that message), so this hook reports a
 * refused LDAP login the way a refused password is reported, before PostgreSQL's own report.
 * Nothing else changes: accepted logins, other methods and dropped clients (STATUS_EOF) pass
 * through untouched.
 */
#include "postgres.h"

#include "fmgr.h"
#include "libpq/auth.h"
#include "libpq/hba.h"
#include "libpq/libpq-be.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static ClientAuthentication_hook_type previous_hook = NULL;

static void
pgentra_client_auth(Port *port, int status)
{
	if (previous_hook)
		previous_hook(port, status);
	if (status == STATUS_ERROR && port->hba && port->hba->auth_method == uaLDAP)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("password authentication failed for user \"%s\"", port->user_name)));
}

void
_PG_init(void)
{
	previous_hook = ClientAuthentication_hook;
	ClientAuthentication_hook = pgentra_client_auth;
}
