# frozen_string_literal: true

# The binding without a network: exception classes, configuration errors, secret mode,
# conformance vectors, secrets kept out of messages and #inspect, panics.

require_relative "test_helper"

class CoreTest < Minitest::Test
  VECTORS = File.expand_path("../../tests/vectors/render.json", __dir__)
  FORMATS = %w[libpq uri ado jdbc json].freeze
  CLASSES = {
    PgEntra::ConfigError => [:config, 1],
    PgEntra::CredentialError => [:credential, 2],
    PgEntra::IdentityServiceError => [:identity_service, 3],
    PgEntra::NetworkError => [:network, 4],
    PgEntra::TlsPolicyError => [:tls_policy, 5],
    PgEntra::DatabaseError => [:database, 6],
    PgEntra::InternalError => [:internal, 7]
  }.freeze

  def test_module_surface_and_versions
    assert_equal PgEntra::VERSION, PgEntra::NATIVE_VERSION
    %i[token conninfo connection_string connect user invalidate default_connector].each do |m|
      assert_respond_to PgEntra, m
    end
    %i[token conninfo connection_string connect user invalidate invalidate_if token_requests].each do |m|
      assert PgEntra::Connector.method_defined?(m), m
    end
  end

  def test_error_classes
    assert_operator PgEntra::Error, :<, StandardError
    assert_nil PgEntra::Error.new("x").kind
    assert_nil PgEntra::Error.new("x").service_code
    CLASSES.each do |cls, (kind, id)|
      assert_operator cls, :<, PgEntra::Error
      e = cls.new("boom")
      assert_equal kind, e.kind
      assert_equal id, e.kind_id
      assert_nil e.service_code
      assert_equal "boom", e.message
    end
  end

  def test_code_is_a_deprecated_alias_of_service_code
    e = PgEntra::IdentityServiceError.new("x")
    e.instance_variable_set(:@service_code, "AADSTS7000215")
    was = Warning[:deprecated]
    Warning[:deprecated] = true
    assert_output(nil, /PgEntra::Error#code is deprecated; use #service_code/) { assert_equal "AADSTS7000215", e.code }
    Warning[:deprecated] = false
    assert_output(nil, "") { assert_equal "AADSTS7000215", e.code }
  ensure
    Warning[:deprecated] = was
  end

  def test_connector_cannot_be_allocated_empty
    assert_raises(TypeError) { PgEntra::Connector.allocate }
    assert_raises(ArgumentError) { PgEntra::Connector.new(no_such_option: 1) }
  end

  def test_bad_port_in_connection_string_is_a_config_error_naming_the_key
    e = assert_raises(PgEntra::ConfigError) { PgEntra::Connector.new(connection_string: "host=h port=70000") }
    assert_includes e.message, "port"
    assert_includes e.message, "out of range"
    refute_includes e.message, "70000" # never a value: it may be a piece of a password (#13)
    assert_includes e.message, "connection_string"
    assert_equal :config, e.kind
    assert_nil e.service_code
    assert_kind_of PgEntra::Error, e
  end

  def test_config_errors_name_the_culprit
    [
      [{ host: "h", port: 70_000 }, "port"],
      [{ host: "h", port: 0 }, "port"],
      [{ host: "h", port: "x1" }, "port"],
      [{ host: "h", timeout: -1 }, "timeout"],
      [{ host: "h", timeout: "soon" }, "timeout"],
      [{ host: "h", credential: "bogus" }, "bogus"],
      [{ host: "h", sslmode: "sometimes" }, "sslmode"],
      [{ connection_string: "host=h password='x" }, "unterminated"],
      [{ connection_string: "host=h sslmode=sometimes" }, "sslmode"],
      [{ connection_string: "host=h dbname=x;User Id=u" }, "connection_string"],
      [{ host: "h", scope: "https://x" }, "/.default"],
      [{ host: "h", authority_host: "http://x" }, "AZURE_AUTHORITY_HOST"],
      [{ prefix: "bad prefix!" }, "prefix"],
      [{ host: 42 }, "host"]
    ].each do |kw, needle|
      e = assert_raises(PgEntra::ConfigError, kw.inspect) { PgEntra::Connector.new(**kw) }
      assert_includes e.message, needle, kw.inspect
    end
  end

  def test_no_configuration_names_the_variables
    saved = ENV.to_h.select { |k, _| k.upcase.start_with?("AZURE_POSTGRESQL") || k == "PGENTRA_PREFIX" }
    saved.each_key { |k| ENV.delete(k) }
    previous = PgEntra.instance_variable_get(:@default_connector)
    PgEntra.default_connector = nil
    begin
      e = assert_raises(PgEntra::ConfigError) { PgEntra::Connector.new }
      assert_includes e.message, "AZURE_POSTGRESQL_CONNECTIONSTRING"
      assert_raises(PgEntra::ConfigError) { PgEntra.token }
      assert_raises(PgEntra::ConfigError) { PgEntra.conninfo }
      assert_raises(PgEntra::ConfigError) { PgEntra.connection_string }
    ensure
      saved.each { |k, v| ENV[k] = v }
      PgEntra.default_connector = previous
    end
  end

  def test_custom_prefix_and_secret_mode
    ENV["MYAPP_CONNECTIONSTRING"] = "host=h.example dbname=d user=u password=pw"
    c = PgEntra::Connector.new(prefix: "MYAPP")
    assert_equal ["MYAPP", "h.example", "d", 5432, "require"], [c.prefix, c.host, c.dbname, c.port, c.sslmode]
    assert c.password_mode?
    assert_equal({ host: "h.example", port: 5432, dbname: "d", user: "u", password: "pw", sslmode: "require" }, c.conninfo)
    assert_equal 0, c.token_requests
  ensure
    ENV.delete("MYAPP_CONNECTIONSTRING")
  end

  def test_secret_mode_conninfo_overrides_and_formats
    c = PgEntra::Connector.new(connection_string: "host=h port=6432 dbname=app user=u password=pw application_name=web")
    d = c.conninfo
    assert_equal({ host: "h", port: 6432, dbname: "app", user: "u", password: "pw", sslmode: "require", application_name: "web" }, d)
    assert_kind_of Integer, d[:port]
    d = c.conninfo(dbname: "other", application_name: nil, "connect_timeout" => 5)
    assert_equal "other", d[:dbname]
    refute d.key?(:application_name)
    assert_equal 5, d[:connect_timeout]
    assert_equal "u", c.user
    assert_equal "host=h port=6432 dbname=app user=u password=pw sslmode=require application_name=web", c.connection_string
    assert_equal c.connection_string(:uri), c.connection_string("uri")
    e = assert_raises(PgEntra::ConfigError) { c.token }
    assert_includes e.message, "password"
    e = assert_raises(PgEntra::ConfigError) { c.connection_string(:yaml) }
    assert_includes e.message, "format"
    refute c.invalidate_if("pw")
    c.invalidate
    assert_equal 0, c.token_requests
  end

  def test_a_token_never_goes_without_tls
    c = PgEntra::Connector.new(connection_string: "host=h sslmode=disable", credential: "managed-identity")
    e = assert_raises(PgEntra::TlsPolicyError) { c.conninfo }
    assert_includes e.message, "sslmode=disable"
    assert_equal :tls_policy, e.kind
    assert_raises(PgEntra::TlsPolicyError) { c.connection_string }
    assert_equal 0, c.token_requests
  end

  def test_inspect_and_errors_never_show_secrets
    secret = "hunter2-Very-Secret-value"
    c = PgEntra::Connector.new(host: "h", user: "u", client_id: Harness::SP, tenant_id: "t", client_secret: secret)
    assert_match(/\A#<PgEntra::Connector host="h" port=\d+ /, c.inspect)
    refute_includes c.inspect, secret
    refute_includes c.credential, secret
    pw = PgEntra::Connector.new(connection_string: "host=h user=u password=#{secret}")
    refute_includes pw.inspect, secret
    refute_includes pw.to_s, secret
  end

  def test_a_panic_becomes_an_internal_error
    %w[gvl nogvl].each do |where|
      e = assert_raises(PgEntra::InternalError) { PgEntra._panic_for_tests(where) }
      assert_includes e.message, "panic"
      assert_equal :internal, e.kind
    end
  end

  def test_conformance_vectors_byte_identical
    vectors = JSON.parse(File.read(VECTORS, encoding: "UTF-8"))
    refute_empty vectors
    vectors.each do |v|
      rendered = v.fetch("rendered")
      c = PgEntra::Connector.new(connection_string: rendered.fetch("libpq"), credential: "password")
      assert c.password_mode?, v["name"]
      FORMATS.each do |f|
        assert_equal rendered.fetch(f).b, c.connection_string(f.to_sym).b, "#{v['name']}: #{f}"
      end
      p = v.fetch("params")
      d = c.conninfo
      %w[host port dbname user password sslmode].each do |k|
        assert_equal p[k], d[k.to_sym], "#{v['name']}: #{k}"
      end
      assert_equal JSON.parse(rendered["json"]), JSON.parse(c.connection_string(:json)), v["name"]
    end
  end
end
