"""Issue #17 item 4: a pgentra error while connecting (a configuration error, an identity
service error) reaches each framework as its own connection error, with the pgentra error as
the cause: Django's and SQLAlchemy's OperationalError, so code written for them (retries,
health checks, `except OperationalError`) works."""

from __future__ import annotations

import pytest

import pgentra
from conftest import SP, TENANT, configure_django, libpq, needs_harness

pytestmark = needs_harness

BAD = {
    # A configuration error: an unknown credential kind.
    "config": ({"credential": "no-such-credential"}, pgentra.ConfigError),
    # An identity service error: a wrong client secret (AADSTS7000215).
    "identity": ({"credential": "client-secret", "client_id": SP, "tenant_id": TENANT, "client_secret": "wrong-secret-x1"},
                 pgentra.IdentityServiceError),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_django_sees_operational_error(case):
    pytest.importorskip("django")
    configure_django()
    from django.db.utils import OperationalError

    from pgentra.django.base import DatabaseWrapper

    options, cause = BAD[case]
    sd = {"ENGINE": "pgentra.django", "NAME": "postgres", "USER": "", "PASSWORD": "", "HOST": "", "PORT": "",
          "ATOMIC_REQUESTS": False, "AUTOCOMMIT": True, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
          "TIME_ZONE": None, "TEST": {}, "OPTIONS": {"connection_string": libpq(), **options}}
    w = DatabaseWrapper(sd, f"errors-{case}")
    with pytest.raises(OperationalError) as info:
        w.ensure_connection()
    assert isinstance(info.value.__cause__, cause), repr(info.value.__cause__)
    assert "wrong-secret-x1" not in str(info.value)


@pytest.mark.parametrize("case", sorted(BAD))
def test_sqlalchemy_sees_operational_error(case):
    import sqlalchemy
    import sqlalchemy.exc

    import pgentra.sqlalchemy

    options, cause = BAD[case]
    c = pgentra.Connector(connection_string=libpq(), credential="managed-identity") if case == "config" else \
        pgentra.Connector(connection_string=libpq(), **options)
    url = pgentra.sqlalchemy.url_from(c)
    if case == "config":
        # A configuration error met when connecting: the URL's sslmode is not one.
        url = url.update_query_dict({"sslmode": "no-such-mode"})
    engine = pgentra.sqlalchemy.create_engine(url, connector=c, poolclass=sqlalchemy.pool.NullPool)
    with pytest.raises(sqlalchemy.exc.OperationalError) as info:
        engine.connect()
    assert isinstance(info.value.__cause__, cause), repr(info.value.__cause__)
    assert info.value.orig is info.value.__cause__
    assert "wrong-secret-x1" not in str(info.value)
