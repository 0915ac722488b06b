# frozen_string_literal: true

# ActiveRecord's postgresql adapter with require "pgentra/active_record": settings that name no
# password, queries, a forced token rotation between two connections, threads sharing one
# connector, and a password in the settings left alone.

require_relative "test_helper"
require "pgentra/active_record"

class ActiveRecordTest < HarnessTest
  class Probe < ActiveRecord::Base
    self.abstract_class = true
  end

  def settings(**extra)
    { adapter: "postgresql", host: ENV.fetch("PGENTRA_PG_HOST"), port: ENV.fetch("PGENTRA_PG_PORT").to_i,
      database: "postgres", sslmode: "require" }.merge(extra)
  end

  def connect(**config)
    Probe.establish_connection(config)
    Probe.connection
  end

  def setup
    super
    PgEntra::ActiveRecord.reset! # no connector (or remembered failure) of an earlier test
  end

  def teardown
    Probe.remove_connection if Harness.on?
  end

  def test_hook_is_installed
    assert_includes %i[new_client postgresql_connection], PgEntra::ActiveRecord::HOOK
    if ActiveRecord::ConnectionAdapters::PostgreSQLAdapter.respond_to?(:new_client)
      assert_includes ActiveRecord::ConnectionAdapters::PostgreSQLAdapter.singleton_class.ancestors,
                      PgEntra::ActiveRecord::NewClient
    end
  end

  def test_query_with_no_password_in_the_settings
    conn = connect(**settings)
    assert_equal Harness::APP_ROLE, conn.select_value("select current_user")
    assert_equal "postgres", conn.select_value("select current_database()")
  end

  def test_settings_from_the_service_connector_variables
    conn = connect(adapter: "postgresql") # host, port, database, sslmode from AZURE_POSTGRESQL_CONNECTIONSTRING
    assert_equal Harness::APP_ROLE, conn.select_value("select current_user")
    conn = connect(**settings(username: Harness::APP_ROLE, application_name: "ar-test"))
    assert_equal "ar-test", conn.select_value("show application_name")
  end

  def test_a_forced_rotation_after_disconnect_gets_a_current_token
    conn = connect(**settings)
    assert_equal Harness::APP_ROLE, conn.select_value("select current_user")
    connector = PgEntra::ActiveRecord.connector_for(Probe.connection_pool.db_config.configuration_hash)
    old = connector.token
    before = connector.token_requests
    Harness.rotate # the cached token stops working
    Probe.connection_pool.disconnect!
    assert_equal Harness::APP_ROLE, Probe.connection.select_value("select current_user") # a new connection, renewed once
    refute_equal old, connector.token
    assert_equal before + 1, connector.token_requests
  end

  def test_threads_share_one_connector
    connect(**settings)
    connector = PgEntra::ActiveRecord.connector_for(Probe.connection_pool.db_config.configuration_hash)
    connector.token
    before = connector.token_requests
    users = Array.new(4) do
      Thread.new do
        Probe.connection_pool.with_connection { |c| c.select_value("select current_user") }
      end
    end.map(&:value)
    assert_equal [Harness::APP_ROLE] * 4, users
    assert_equal before, connector.token_requests, "every connection used the cached token"
  end

  def test_a_password_in_the_settings_is_used_as_is
    conn = connect(**settings(username: "app_static", password: %(static pw;'"\\@/?#%)))
    assert_equal "app_static", conn.select_value("select current_user")
    refute PgEntra::ActiveRecord.applies?({ host: "h", password: "pw" })
    refute PgEntra::ActiveRecord.applies?({ host: "/var/run/postgresql" })
    assert PgEntra::ActiveRecord.applies?({ host: "h", password: "" })
  end

  STATIC_PW = %(static pw;'"\\@/?#%)

  # Runs the block with no Service Connector variable in the environment and PGPASSWORD set to
  # the static role's password (what an app that does not use pgentra relies on).
  def without_service_connector
    saved = ENV.to_h.select { |k, _| k.start_with?("AZURE_POSTGRESQL_") }
    saved.each_key { |k| ENV.delete(k) }
    ENV["PGPASSWORD"] = STATIC_PW
    yield
  ensure
    ENV.delete("PGPASSWORD")
    saved.each { |k, v| ENV[k] = v }
  end

  def test_without_the_key_or_service_connector_pgentra_stays_out
    without_service_connector do
      conn = connect(**settings(username: "app_static"))
      assert_equal "app_static", conn.select_value("select current_user") # libpq's PGPASSWORD, untouched
      refute PgEntra::ActiveRecord.applies?({ host: "h" }, {})
      assert PgEntra::ActiveRecord.applies?({ host: "h" }, { pgentra: true })
    end
  end

  def test_the_pgentra_key_turns_it_on_and_off
    without_service_connector do
      conn = connect(**settings(pgentra: true))
      assert_equal Harness::APP_ROLE, conn.select_value("select current_user")
      Probe.connection_pool.disconnect! # a reconnect keeps the configuration's choice
      assert_equal Harness::APP_ROLE, Probe.connection.select_value("select current_user")
    end
    ENV["PGPASSWORD"] = STATIC_PW
    conn = connect(**settings(username: "app_static", pgentra: false)) # variables present, but opted out
    assert_equal "app_static", conn.select_value("select current_user")
  ensure
    ENV.delete("PGPASSWORD")
  end

  def test_a_configuration_error_is_raised_as_activerecords_connection_error
    e = assert_raises(ActiveRecord::ConnectionNotEstablished) { connect(**settings(sslmode: "sometimes")) }
    assert_kind_of PgEntra::ConfigError, e.cause
    assert_includes e.message, "sslmode"
  end
end
