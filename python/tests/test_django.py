"""Django with ENGINE "pgentra.django": settings that name no password, ORM queries, and a
token rotation between two connections (the seed's read-once token would break there)."""

from __future__ import annotations

import os
import threading

import psycopg2
import pytest

from conftest import APP_ROLE, HARNESS, configure_django, needs_harness, rotate

pytestmark = needs_harness

django = pytest.importorskip("django")


@pytest.fixture(scope="module")
def dj():
    configure_django()
    from django.db import connections, models

    class Role(models.Model):
        rolname = models.CharField(max_length=63, primary_key=True)
        rolcanlogin = models.BooleanField()

        class Meta:
            app_label = "pgentra_tests"
            managed = False
            db_table = "pg_roles"

    yield connections, Role
    connections.close_all()


def test_orm_query_with_settings_from_the_environment(dj):
    connections, Role = dj
    conn = connections["default"]
    with conn.cursor() as cur:
        cur.execute("select current_user, current_database()")
        assert cur.fetchone() == (APP_ROLE, "postgres")
    assert conn.settings_dict["NAME"] == "postgres", "filled in from the connection string"
    assert Role.objects.using("default").get(rolname=APP_ROLE).rolcanlogin is True
    assert "password" not in repr(conn.settings_dict).lower() or conn.settings_dict.get("PASSWORD", "") == ""


def test_explicit_settings_and_options(dj):
    connections, Role = dj
    conn = connections["explicit"]
    with conn.cursor() as cur:
        cur.execute("show application_name")
        assert cur.fetchone()[0] == "dj"
    assert Role.objects.using("explicit").filter(rolname=APP_ROLE).exists()
    params = conn.get_connection_params()
    assert "credential" not in params and params["user"] == APP_ROLE and params["sslmode"] == "require"


def test_a_new_connection_after_a_token_rotation_gets_a_current_token(dj):
    connections, Role = dj
    from pgentra.django.base import connector_for

    conn = connections["default"]
    assert Role.objects.filter(rolname=APP_ROLE).count() == 1
    c = connector_for(conn.settings_dict)
    stale = conn.get_connection_params()["password"]  # what a settings.py that reads the token once would hold
    rotate()  # that token stops working
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host=os.environ["PGENTRA_PG_HOST"], port=os.environ["PGENTRA_PG_PORT"], dbname="postgres",
                         user=APP_ROLE, password=stale, sslmode="require")
    conn.close()
    assert Role.objects.filter(rolname=APP_ROLE).count() == 1  # a new connection, a current token
    assert c.token() != stale


def test_threads_share_one_connector(dj):
    connections, Role = dj
    from pgentra.django.base import connector_for

    c = connector_for(connections["default"].settings_dict)
    before = c.token_requests
    errors = []

    def work():
        try:
            from django.db import connection

            with connection.cursor() as cur:
                cur.execute("select current_user")
                assert cur.fetchone()[0] == APP_ROLE
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            from django.db import connections as cs

            cs.close_all()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert c.token_requests == before, "every thread's connection used the cached token"


def test_django_pool_gives_each_new_connection_a_current_token(dj):
    """Django 5.1+'s own pool (OPTIONS["pool"], psycopg_pool): the pool is built with the
    keywords of its first connection, token included; pgentra's connection class gives every
    new pooled connection the connector's current token (issue #17 item 5)."""
    from conftest import identity_requests, revoke
    from pgentra.django.base import DatabaseWrapper

    sd = {**dj[0]["default"].settings_dict, "CONN_MAX_AGE": 0,
          "OPTIONS": {"pool": {"min_size": 1, "max_size": 3, "timeout": 10}, "timeout": 61.5}}
    w = DatabaseWrapper(sd, "pooled")
    try:
        with w.cursor() as cur:
            cur.execute("select current_user")
            assert cur.fetchone()[0] == APP_ROLE
        c = w.pgentra_connector()
        first = c.token()
        w.close()  # Django gives its connection back to the pool
        revoke(first)  # the token the pool was built with, still cached, is refused from now on
        before = identity_requests()
        # The pool holds one connection, or two if it grew while its first was opening (both
        # logged in before the revocation): taking max_size=3 at once makes it open at least
        # one more, after the revocation.
        held = [w.pool.getconn() for _ in range(3)]
        try:
            for conn in held:
                assert conn.execute("select current_user").fetchone()[0] == APP_ROLE
        finally:
            for conn in held:
                w.pool.putconn(conn)
        assert identity_requests() == before + 1, "one new token for the new pooled connections"
        assert c.token() != first
    finally:
        w.close_pool()


def test_databases_options_cannot_lower_sslmode(dj):
    """DATABASES' own values are merged by the core, which checks the final parameters: an
    OPTIONS sslmode of 'prefer' cannot lower the configured 'require' (issue #13)."""
    from pgentra.django.base import DatabaseWrapper

    settings_dict = {
        "ENGINE": "pgentra.django", "NAME": "postgres", "USER": APP_ROLE, "PASSWORD": "",
        "HOST": os.environ["PGENTRA_PG_HOST"], "PORT": os.environ["PGENTRA_PG_PORT"],
        "OPTIONS": {"sslmode": "prefer", "credential": "managed-identity"},
        "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False, "TEST": {},
    }
    w = DatabaseWrapper(settings_dict, alias="tls_policy")
    params = w.get_connection_params()
    assert params["sslmode"] == "require", params
    w.connect()
    try:
        with w.cursor() as cur:
            cur.execute("select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()")
            assert cur.fetchone() == (APP_ROLE, True)
    finally:
        w.close()
