# frozen_string_literal: true

# Oracle: ActiveRecord's own URL resolver (ActiveRecord::DatabaseConfigurations::
# ConnectionUrlResolver, what DATABASE_URL and `url:` in database.yml go through; Debian's
# ActiveRecord 6.1, see ruby/deps.sh) reads every conformance vector's `uri` rendering
# (tests/vectors/render.json) back to the vector's params. Parsing only: no database, no harness.

# It needs neither the extension nor test_helper.
require "json"
require "minitest/autorun"
require "active_record"
require "active_record/database_configurations"

class OracleTest < Minitest::Test
  VECTORS = JSON.parse(File.read(File.expand_path("../../tests/vectors/render.json", __dir__)))

  def test_active_record_is_the_version_named_here
    assert_equal "6.1", ActiveRecord::VERSION::STRING[/\A\d+\.\d+/]
  end

  def test_active_record_url_resolver_reads_every_uri_back
    assert_operator VECTORS.size, :>=, 10
    VECTORS.each do |v|
      p = v.fetch("params")
      assert_equal %w[dbname host password port sslmode user], p.keys.sort, v["name"]
      got = ActiveRecord::DatabaseConfigurations::ConnectionUrlResolver.new(v.fetch("rendered").fetch("uri")).to_hash
      want = { adapter: "postgresql", host: p["host"], port: p["port"], database: p["dbname"],
               username: p["user"], password: p["password"], sslmode: p["sslmode"] }
      assert_equal want, got, v["name"]
    end
  end
end
