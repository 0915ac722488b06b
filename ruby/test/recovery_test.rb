# frozen_string_literal: true

# Issue #17: a refusal of the token the cache still holds (revoked through the emulator; the
# harness's PostgreSQL answers 28P01) costs exactly one identity request and one reconnect, in
# PgEntra.connect / Connector#connect and in ActiveRecord; 10 connects as a role that does not
# exist cost at most 2 identity requests (the core's REFUSAL_HOLD). And pgentra errors reach
# ActiveRecord as ActiveRecord::ConnectionNotEstablished with the pgentra error as the cause.

require_relative "test_helper"
require "pgentra/active_record"

class RecoveryTest < HarnessTest
  class Probe < ActiveRecord::Base
    self.abstract_class = true
  end

  def setup
    super
    PgEntra::ActiveRecord.reset! # connectors (and tokens) of this test's own
  end

  def teardown
    Probe.remove_connection if Harness.on?
    # Its connectors remember this test's injected failures for a few seconds: not for the
    # tests that run next (minitest's order is random).
    PgEntra::ActiveRecord.reset!
  end

  def connector(**extra)
    PgEntra::Connector.new(connection_string: Harness.libpq, credential: "managed-identity", **extra)
  end

  def ar_settings(**extra)
    { adapter: "postgresql", pgentra: true, host: ENV.fetch("PGENTRA_PG_HOST"), port: ENV.fetch("PGENTRA_PG_PORT").to_i,
      database: "postgres", sslmode: "require" }.merge(extra)
  end

  def ar_user
    Probe.connection_pool.disconnect!
    Probe.connection.select_value("select current_user")
  end

  def test_connect_after_revocation
    c = connector
    conn = c.connect
    assert_equal Harness::APP_ROLE, conn.exec("select current_user").getvalue(0, 0)
    conn.close
    old = c.token
    Harness.revoke(old)
    before = Harness.identity_requests
    conn = c.connect
    assert_equal Harness::APP_ROLE, conn.exec("select current_user").getvalue(0, 0)
    conn.close
    assert_equal before + 1, Harness.identity_requests, "exactly one new identity request"
    refute_equal old, c.token
  end

  def test_connect_as_a_role_that_does_not_exist
    c = connector(user: "no-such-role-ruby")
    before = Harness.identity_requests
    10.times { assert_raises(PG::ConnectionBad) { c.connect } }
    made = Harness.identity_requests - before
    assert_operator made, :>=, 1
    assert_operator made, :<=, 2, "10 failed connects made #{made} identity requests"
  end

  def test_active_record_after_revocation
    Probe.establish_connection(ar_settings)
    assert_equal Harness::APP_ROLE, ar_user
    c = PgEntra::ActiveRecord.connector_for(Probe.connection_pool.db_config.configuration_hash)
    old = c.token
    Harness.revoke(old)
    before = Harness.identity_requests
    assert_equal Harness::APP_ROLE, ar_user
    assert_equal before + 1, Harness.identity_requests, "exactly one new identity request"
    refute_equal old, c.token
  end

  def test_active_record_as_a_role_that_does_not_exist
    Probe.establish_connection(ar_settings(username: "no-such-role-ar"))
    before = Harness.identity_requests
    10.times do
      Probe.connection_pool.disconnect!
      assert_raises(ActiveRecord::ConnectionNotEstablished) { Probe.connection.select_value("select 1") }
    end
    made = Harness.identity_requests - before
    assert_operator made, :>=, 1
    assert_operator made, :<=, 2, "10 failed connects made #{made} identity requests"
  end

  def test_active_record_sees_a_configuration_error_as_connection_not_established
    Probe.establish_connection(ar_settings(sslmode: "sometimes"))
    e = assert_raises(ActiveRecord::ConnectionNotEstablished) { Probe.connection }
    assert_kind_of PgEntra::ConfigError, e.cause
    assert_includes e.message, "sslmode"
  end

  def test_active_record_sees_an_identity_error_as_connection_not_established
    Probe.establish_connection(ar_settings)
    Harness.faults([{ status: 400 }])
    e = assert_raises(ActiveRecord::ConnectionNotEstablished) { Probe.connection }
    assert_kind_of PgEntra::IdentityServiceError, e.cause
  end
end
