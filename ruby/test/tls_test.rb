# frozen_string_literal: true

# Secure by default (issue #13): an Azure server name gets verify-full, and the caller's own
# values (connect/conninfo overrides, database.yml) can never lower the mode. Azure-style names
# resolve to 127.0.0.1 in the test namespace; the harness's test CA stands in for Azure's roots.

require_relative "test_helper"
require "pg"
require "socket"

class TlsTest < HarnessTest
  def azure_cs(var = "PGENTRA_TEST_AZURE_HOST", port = ENV.fetch("PGENTRA_PG_PORT"))
    "host=#{ENV.fetch(var)} port=#{port} dbname=postgres sslmode=require"
  end

  # A fake PostgreSQL that declines TLS and asks for a cleartext password.
  def fake_server
    server = TCPServer.new("127.0.0.1", 0)
    events = Queue.new
    Thread.new do
      loop do
        s = server.accept
        Thread.new(s) do |c|
          events << :connection
          n = c.read(4).unpack1("N")
          body = c.read(n - 4)
          if [80_877_103, 80_877_104].include?(body[0, 4].unpack1("N"))
            c.write("N")
            n = c.read(4).unpack1("N")
            c.read(n - 4)
          end
          events << :startup
          c.write(["R", 8, 3].pack("aNN"))
          events << :password if c.read(1) == "p"
        rescue StandardError
          nil
        ensure
          c.close
        end
      end
    rescue IOError
      nil
    end
    [server, events]
  end

  def test_an_azure_name_is_verified_and_logs_in
    c = fresh(connection_string: azure_cs)
    d = c.conninfo
    assert_equal ["verify-full", ENV.fetch("SSL_CERT_FILE")], [d[:sslmode], d[:sslrootcert]]
    conn = c.connect
    assert_equal Harness::APP_ROLE, current_user(conn)
    conn.close
    # An override never lowers it.
    assert_equal "verify-full", c.conninfo(sslmode: "require")[:sslmode]
  end

  def test_a_name_the_certificate_lacks_is_refused
    c = fresh(connection_string: azure_cs("PGENTRA_TEST_WRONG_HOST"))
    assert_raises(PG::ConnectionBad) { c.connect }
  end

  def test_connect_overrides_cannot_send_the_token_without_tls
    server, events = fake_server
    c = fresh(connection_string: "host=127.0.0.1 port=#{server.addr[1]} dbname=postgres sslmode=require")
    %w[disable allow prefer].each do |mode|
      assert_equal "require", c.conninfo(sslmode: mode)[:sslmode]
      assert_equal "require", c.conninfo(sslmode: nil)[:sslmode]
      assert_raises(PG::ConnectionBad) { c.connect(sslmode: mode) }
    end
    seen = []
    seen << events.pop until events.empty?
    refute_includes seen, :password
  ensure
    server&.close
  end
end
