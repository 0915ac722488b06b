# frozen_string_literal: true

# The shared token cache (issue #16) through the Ruby binding, with sharing ON as in
# production: worker processes forked as Puma and Unicorn fork them share one identity
# request. The harness keeps sharing off for the rest of this suite (PGENTRA_SHARED_CACHE=0);
# these tests turn it on for their own processes only, with a fresh private cache folder under
# $PGENTRA_TEST_DIR, and count requests at the emulator (/control/stats).

require "digest"
require "fileutils"
require "open3"
require "rbconfig"
require_relative "test_helper"

class SharedCacheTest < HarnessTest
  WORKERS = 8
  LIB = File.expand_path("../lib", __dir__)
  # One process of a later deploy, or a worker started later: a fresh interpreter, its own connector.
  FRESH = <<~RUBY
    require "digest"
    require "json"
    require "pgentra"
    c = PgEntra::Connector.new(connection_string: ARGV[0], credential: "managed-identity", timeout: 10)
    begin
      puts JSON.generate("token" => Digest::SHA256.hexdigest(c.token)[0, 16], "requests" => c.token_requests)
    rescue PgEntra::Error => e
      puts JSON.generate("error" => e.class.name, "kind" => e.kind.to_s, "service_code" => e.service_code, "message" => e.message)
    end
  RUBY

  def setup
    super
    @folder = File.join(ENV.fetch("PGENTRA_TEST_DIR"), "ruby-shared-#{name}")
    FileUtils.rm_rf(@folder)
    Dir.mkdir(@folder, 0o700)
    @saved = ENV.to_h.slice("PGENTRA_SHARED_CACHE", "PGENTRA_CACHE_DIR")
    Harness.reset
  end

  def teardown
    return unless @folder

    ENV.update(@saved)
    Harness.reset
    FileUtils.rm_rf(@folder)
  end

  def requests
    Harness.stats.fetch("msi_requests")
  end

  def share!(switch = "1")
    ENV["PGENTRA_SHARED_CACHE"] = switch
    ENV["PGENTRA_CACHE_DIR"] = @folder
  end

  def connector
    PgEntra::Connector.new(connection_string: Harness.libpq, credential: "managed-identity", timeout: 10)
  end

  # Log in to PostgreSQL with the connector's token: the role it logged in as.
  def login(connector)
    conn = connector.connect
    current_user(conn)
  ensure
    conn&.close
  end

  def fresh_process(switch = "1")
    env = { "PGENTRA_SHARED_CACHE" => switch, "PGENTRA_CACHE_DIR" => @folder }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-I", LIB, "-e", FRESH, Harness.libpq)
    assert status.success?, err
    JSON.parse(out)
  end

  # Fork a worker that runs the block and reports its Hash through a pipe; never returns into
  # minitest. Returns [pid, reader].
  def fork_worker(close_in_child = [])
    r, w = IO.pipe
    pid = Process.fork do
      r.close
      close_in_child.each(&:close)
      begin
        w.write(JSON.generate(yield))
        w.close
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException
        w.write(JSON.generate("error" => "#{e.class}: #{e.message}"))
        w.close
        exit!(1)
      end
    end
    w.close
    [pid, r]
  end

  def collect(workers)
    workers.map do |pid, r|
      out = r.read
      r.close
      _, status = Process.wait2(pid)
      assert status.success?, out
      JSON.parse(out)
    end
  end

  def test_cold_forked_workers_make_one_request_and_a_later_process_none
    Harness.faults([{ delay_ms: 300 }]) # the first request is slow: the others ask while it runs
    gate_r, gate_w = IO.pipe
    ready_r, ready_w = IO.pipe
    workers = Array.new(WORKERS) do |i|
      fork_worker([gate_w, ready_r]) do
        share!
        c = connector
        ready_w.write(".")
        ready_w.close
        gate_r.read # end of file once the parent closes the gate
        token = c.token
        user = i.zero? ? login(c) : nil
        # A digest, not the token: a failed assertion prints the report.
        { "pid" => Process.pid, "token" => Digest::SHA256.hexdigest(token)[0, 16], "requests" => c.token_requests, "user" => user }
      end
    end
    ready_w.close
    gate_r.close
    assert_equal WORKERS, ready_r.read(WORKERS).to_s.size, "every worker got ready"
    ready_r.close
    gate_w.close # the gate opens: every worker asks now
    got = collect(workers)
    assert_equal WORKERS, got.map { |g| g["pid"] }.uniq.size
    assert_equal 1, requests, "#{WORKERS} forked workers made #{requests} identity requests"
    assert_equal 1, got.map { |g| g["token"] }.uniq.size, "every worker got the same token"
    assert_equal 1, got.sum { |g| g["requests"] }
    assert_equal [Harness::APP_ROLE], got.map { |g| g["user"] }.compact, "a worker logged in with the shared token"
    # A warm cache costs nothing.
    assert_equal({ "token" => got[0]["token"], "requests" => 0 }, fresh_process)
    assert_equal 1, requests
  end

  def test_workers_forked_after_the_parent_fetched_make_no_request
    # Puma's preload_app! (Unicorn's preload_app true): the master warms, then forks.
    share!
    parent = connector
    token = parent.token
    assert_equal 1, requests
    workers = Array.new(WORKERS) do |i|
      fork_worker do
        inherited = parent.token
        own = connector # the app created in the worker (no preload)
        mine = own.token
        user = i.zero? ? login(own) : nil
        { "inherited" => inherited == token, "own" => mine == token, "requests" => own.token_requests, "user" => user }
      end
    end
    collect(workers).each do |g|
      assert g["inherited"] && g["own"], g.inspect
      assert_equal 0, g["requests"], g.inspect
      assert_includes [nil, Harness::APP_ROLE], g["user"]
    end
    assert_equal 1, requests, "#{WORKERS} forked workers made #{requests - 1} identity requests"
  end

  def test_switching_sharing_off_is_honoured_per_process
    warm = fresh_process
    assert_equal 1, warm["requests"]
    %w[0 false no OFF].each do |spelling|
      assert_equal 1, fresh_process(spelling)["requests"], "PGENTRA_SHARED_CACHE=#{spelling}"
    end
    assert_equal 5, requests, "each switched-off process asked for itself"
    assert_equal({ "token" => warm["token"], "requests" => 0 }, fresh_process)
    assert_equal 5, requests
  end

  def test_a_failure_is_shared_with_the_next_process_and_raised_as_the_same_class
    # Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
    Harness.faults([{ status: 429, retry_after: 30 }])
    first = fresh_process
    assert_equal "PgEntra::IdentityServiceError", first["error"], first.inspect
    assert_equal 1, requests
    second = fresh_process
    assert_equal 1, requests, "the second process answered from the shared failure"
    assert_equal first.values_at("error", "kind", "service_code"), second.values_at("error", "kind", "service_code")
    assert_includes second["message"], "another process's request"
    assert_equal 1, fresh_process("0")["requests"], "switched off, a process asks for itself"
    assert_equal 2, requests
  end
end
