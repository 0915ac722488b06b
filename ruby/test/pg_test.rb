# frozen_string_literal: true

# The module API and Connector against the identity emulator and the private PostgreSQL, with
# ruby-pg.

require_relative "test_helper"
require "pg"

class PgTest < HarnessTest
  def test_module_level_conninfo_and_connection_string_with_ruby_pg
    PgEntra.invalidate # other tests rotate the role's token; start with a current one
    tok = PgEntra.token
    assert_equal 2, tok.count("."), "JWT-shaped"
    d = PgEntra.conninfo
    assert_equal %i[host port dbname user password sslmode].sort, d.keys.sort
    assert_kind_of Integer, d[:port]
    assert_equal [Harness::APP_ROLE, "require", tok], [d[:user], d[:sslmode], d[:password]]
    conn = PG.connect(**d)
    assert_equal Harness::APP_ROLE, current_user(conn)
    conn.close
    conn = PG.connect(d.transform_keys(&:to_s)) # string keys too
    assert_equal Harness::APP_ROLE, current_user(conn)
    conn.close
    %i[libpq uri].each do |f| # libpq reads both
      conn = PG.connect(PgEntra.connection_string(f))
      assert_equal Harness::APP_ROLE, current_user(conn), f
      conn.close
    end
    %i[ado jdbc json].each { |f| assert_includes PgEntra.connection_string(f), Harness::APP_ROLE }
    assert_equal Harness::APP_ROLE, JSON.parse(PgEntra.connection_string(:json))["user"]
    assert_same PgEntra.default_connector, PgEntra.default_connector
    conn = PgEntra.connect(application_name: "pgentra-ruby")
    assert_equal "pgentra-ruby", conn.exec("show application_name").getvalue(0, 0)
    conn.close
  end

  def test_connector_user_invalidate_and_counters
    c = fresh
    assert_equal 0, c.token_requests
    assert_equal Harness::APP_ROLE, c.user
    assert_equal 1, c.token_requests
    t1 = c.token
    assert_equal 1, c.token_requests, "a cached token makes no request"
    info = c.token_info
    assert_equal "managed-identity", info[:credential]
    assert_equal Harness::APP_ROLE, info[:user]
    assert_operator info[:expires_on], :>, Time.now.to_i
    refute_includes info.inspect, t1
    c.invalidate
    assert_equal t1, c.token # the emulator keeps its token; pgentra asked again
    assert_equal 2, c.token_requests
    refute c.invalidate_if("not-the-token")
    assert_equal 2, c.token_requests
    assert c.invalidate_if(t1)
    c.token
    assert_equal 3, c.token_requests
    refute_includes c.inspect, t1
  end

  def test_user_assigned_identity
    conn = fresh(client_id: Harness::UAMI).connect
    assert_equal "pgentra-uami", current_user(conn)
    conn.close
  end

  def test_32_threads_on_a_fresh_connector_make_one_identity_request
    Harness.reset
    c = fresh
    gate = Queue.new
    threads = Array.new(32) do
      Thread.new do
        gate.pop
        c.token
      end
    end
    32.times { gate << :go }
    tokens = threads.map(&:value)
    assert_equal 1, tokens.uniq.size
    assert_equal 1, Harness.stats["msi_requests"]
    assert_equal 1, c.token_requests
  end

  def test_the_default_connector_is_built_once_under_contention
    previous = PgEntra.instance_variable_get(:@default_connector)
    PgEntra.default_connector = nil
    gate = Queue.new
    threads = Array.new(16) do
      Thread.new do
        gate.pop
        [PgEntra.default_connector, PgEntra.token]
      end
    end
    16.times { gate << :go }
    results = threads.map(&:value)
    assert_equal 1, results.map { |c, _| c.object_id }.uniq.size
    assert_equal 1, results.map(&:last).uniq.size
    assert_equal 1, PgEntra.default_connector.token_requests
  ensure
    PgEntra.default_connector = previous
  end

  def test_an_interrupt_during_a_token_request_is_delivered_afterwards
    Harness.reset
    Harness.faults([{ delay_ms: 400 }])
    c = fresh
    waiter = Thread.new do
      Thread.current.report_on_exception = false
      c.token
    end
    sleep 0.1
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    waiter.raise(RuntimeError, "stop waiting")
    e = assert_raises(RuntimeError) { waiter.value }
    assert_equal "stop waiting", e.message
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    assert_operator took, :<, 0.1, "the interrupt waited #{took.round(3)} s for the request"
    assert_equal 2, c.token.count("."), "the connector is still usable"
    assert_equal 1, c.token_requests, "the interrupted request completed and filled the cache"
  end

  # Timeout and Thread#kill end a wait on a slow identity service at once (issue #14, item 7).
  def test_timeout_and_kill_end_a_wait_within_100_ms
    require "timeout"
    Harness.reset
    Harness.faults([{ delay_ms: 4000 }])
    c = fresh
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    assert_raises(Timeout::Error) { Timeout.timeout(0.5) { c.token } }
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    assert_operator took, :<, 0.6, "Timeout.timeout(0.5) took #{took.round(3)} s"
    waiter = Thread.new { c.conninfo }
    sleep 0.1
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    waiter.kill
    waiter.join
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    assert_operator took, :<, 0.1, "Thread#kill took #{took.round(3)} s"
    assert_equal 2, c.token.count("."), "the request went on and the connector is usable"
  end

  def test_other_threads_run_while_a_token_request_waits
    Harness.reset
    Harness.faults([{ delay_ms: 500 }])
    c = fresh
    ticks = 0
    stop = false
    ticker = Thread.new do
      until stop
        ticks += 1
        sleep 0.01
      end
    end
    sleep 0.03
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    c.token
    took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    stop = true
    ticker.join
    assert_operator took, :>=, 0.45, "the fault should have delayed the request"
    assert_operator ticks, :>=, 25, "the ticker ran only #{ticks} times in #{took.round(3)}s: the GVL was held"
    assert_equal 1, Harness.stats["msi_requests"]
  end

  def test_wrong_client_secret_is_an_identity_service_error_with_the_aadsts_code
    secret = "definitely-Wrong-secret-1234"
    c = fresh(connection_string: Harness.libpq("user=aad_pgentra_sp"), client_id: Harness::SP,
              tenant_id: Harness::TENANT, client_secret: secret, authority_host: ENV.fetch("AZURE_AUTHORITY_HOST"))
    e = assert_raises(PgEntra::IdentityServiceError) { c.token }
    assert_equal "AADSTS7000215", e.service_code
    assert_equal :identity_service, e.kind
    assert_kind_of PgEntra::Error, e
    [e.message, e.inspect, e.full_message, e.backtrace.to_a.join, c.inspect, c.credential].each do |text|
      refute_includes text, secret
    end
    e = assert_raises(PgEntra::IdentityServiceError) { c.conninfo }
    assert_equal "AADSTS7000215", e.service_code
  end

  def test_a_rotated_token_is_renewed_on_the_next_connection
    c = fresh
    old = c.token
    Harness.rotate
    e = assert_raises(PG::ConnectionBad) { PG.connect(**c.conninfo) } # the cached token no longer works
    assert PgEntra.auth_failure?(e)
    conn = c.connect # renews once and connects
    assert_equal Harness::APP_ROLE, current_user(conn)
    conn.close
    refute_equal old, c.token
    assert_equal 2, c.token_requests
    # A caller's own password is never retried.
    assert_raises(PG::ConnectionBad) { c.connect(password: old) }
    assert_equal 2, c.token_requests
  end

  def test_a_child_after_fork_gets_a_token_and_connects
    c = fresh
    parent_token = c.token
    PgEntra.invalidate
    PgEntra.token
    r, w = IO.pipe
    pid = Process.fork do
      r.close
      begin
        raise "not the inherited token" unless c.token == parent_token

        c.invalidate
        tok = c.token # a new request from the child's own runtime
        conn = c.connect
        user = current_user(conn)
        conn.close
        conn = PgEntra.connect # the default connector, inherited
        user2 = current_user(conn)
        conn.close
        w.write("#{user} #{user2} #{tok.count('.')} #{c.token_requests}")
        w.close
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException
        w.write("error #{e.class}: #{e.message}")
        w.close
        exit!(1)
      end
    end
    w.close
    out = r.read
    r.close
    _, status = Process.wait2(pid)
    assert status.success?, out
    assert_equal "#{Harness::APP_ROLE} #{Harness::APP_ROLE} 2 2", out
    assert_equal parent_token, c.token
    assert_equal 1, c.token_requests, "the parent is untouched"
  end

  def test_debug_logs_never_show_the_token
    require "open3"
    require "rbconfig"
    require "tmpdir"
    Dir.mktmpdir do |dir|
      out = File.join(dir, "token")
      lib = File.expand_path("../lib", __dir__)
      code = "require 'pgentra'; File.write(#{out.inspect}, PgEntra::Connector.new(connection_string: #{Harness.libpq.inspect}).token)"
      _stdout, stderr, status = Open3.capture3({ "PGENTRA_LOG" => "trace" }, RbConfig.ruby, "-I", lib, "-e", code)
      assert status.success?, stderr
      tok = File.read(out)
      assert_equal 2, tok.count(".")
      assert_includes stderr, "token acquired"
      refute_includes stderr, tok
    end
  end
end
