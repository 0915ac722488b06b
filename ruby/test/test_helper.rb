# frozen_string_literal: true

# Shared helpers: harness variables, the identity emulator's control endpoint, token rotation.
#
# The tests that talk to PostgreSQL or the identity emulator need the harness
# (tests/harness/with-harness.sh ruby/test.sh): it runs them in a loopback-only network
# namespace with a private PostgreSQL (TLS) and the emulator, and exports IDENTITY_ENDPOINT,
# IDENTITY_HEADER, PGENTRA_PG_HOST, PGENTRA_PG_PORT, PGENTRA_EMULATOR_HTTP, AZURE_AUTHORITY_HOST
# and SSL_CERT_FILE. Without it they are skipped.

require "json"
require "net/http"
require "uri"

# Never let a code path probe a real metadata address (the namespace has no route there either).
ENV["PGENTRA_IMDS_ENDPOINT"] ||= "http://127.0.0.1:9"

module Harness
  TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
  UAMI = "11111111-1111-1111-1111-111111111111"
  SP = "22222222-2222-2222-2222-222222222222"
  APP_ROLE = "pgentra-app"
  PG_RESOURCE = "https://ossrdbms-aad.database.windows.net"

  module_function

  def on?
    !ENV["PGENTRA_PG_HOST"].to_s.empty? && !ENV["PGENTRA_EMULATOR_HTTP"].to_s.empty?
  end

  def libpq(extra = "")
    "host=#{ENV['PGENTRA_PG_HOST']} port=#{ENV['PGENTRA_PG_PORT']} dbname=postgres sslmode=require #{extra}".strip
  end

  # One request to the emulator's control endpoint (loopback, never through a proxy).
  def control(method, path, body = nil)
    u = URI(ENV.fetch("PGENTRA_EMULATOR_HTTP"))
    http = Net::HTTP.new(u.host, u.port, nil)
    http.open_timeout = http.read_timeout = 10
    req = method == :post ? Net::HTTP::Post.new(path) : Net::HTTP::Get.new(path)
    req["Content-Type"] = "application/json"
    req.body = body if body
    res = http.request(req)
    raise "control #{method} #{path}: #{res.code} #{res.body}" unless res.code.to_i.between?(200, 299)

    res.body
  end

  def stats
    JSON.parse(control(:get, "/control/stats"))
  end

  def reset
    control(:post, "/control/reset")
  end

  def faults(spec)
    control(:post, "/control/faults", JSON.generate(spec))
  end

  # Rotate the tokens: the server refuses every token issued before, while pgentra's caches
  # still hold it; the emulator's identity endpoints mint new ones.
  def rotate
    control(:post, "/control/rotate")
  end
end

if Harness.on?
  # What Service Connector would set; the default connector and the integrations read it.
  ENV["AZURE_POSTGRESQL_CONNECTIONSTRING"] = Harness.libpq
end

require "minitest/autorun"
require "pgentra"

# Tests that need PostgreSQL and the identity emulator.
class HarnessTest < Minitest::Test
  def setup
    skip "needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)" unless Harness.on?
  end

  def fresh(**kw)
    kw[:connection_string] ||= Harness.libpq
    PgEntra::Connector.new(**kw)
  end

  def current_user(conn)
    conn.exec("select current_user").getvalue(0, 0)
  end
end

module Harness
  module_function

  # The server refuses this token from now on (SQLSTATE 28P01), while caches still hold it;
  # the identity endpoints hand out a new one.
  def revoke(token)
    control(:post, "/control/revoke", token)
  end

  def identity_requests
    stats["msi_requests"].to_i
  end
end
