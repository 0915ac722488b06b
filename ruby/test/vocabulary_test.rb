# frozen_string_literal: true

# The root README's "One vocabulary" table (issue #19): every name in the Ruby column is a public
# method of the real API (Ruby makes every member a method: `name` and `#name` alike), and the
# old names it calls deprecated still answer and warn in the :deprecated category.

require_relative "test_helper"

class VocabularyTest < HarnessTest
  README = File.expand_path("../../README.md", __dir__)

  # concept => the Ruby column's cell, read from the table under "### One vocabulary".
  def self.column(name)
    lines = File.readlines(README, chomp: true)
    start = lines.index("### One vocabulary") or raise "README.md has no \"### One vocabulary\" section"
    rows = lines[(start + 1)..].drop_while { |l| !l.start_with?("|") }.take_while { |l| l.start_with?("|") }
    rows = rows.map { |l| l.strip.delete_prefix("|").delete_suffix("|").split("|").map(&:strip) }
    col = rows[0].index(name) or raise "no #{name} column in #{rows[0].join(', ')}"
    rows.drop(2).to_h { |r| [r[0], r[col]] }
  end

  # The code spans of one cell: #take(span) checks that the cell names it; #done fails on a span
  # no check took, so a name added to the table needs a check here.
  class Cell
    attr_reader :text

    def initialize(test, concept, text)
      test.refute_nil text, "no row #{concept.inspect}"
      @test, @concept, @text = test, concept, text
      @spans = text.scan(/`([^`]+)`/).flatten
      @left = @spans.dup
    end

    def take(span)
      @test.assert_includes @spans, span, "#{@concept.inspect}: the Ruby cell #{@text.inspect} does not name `#{span}`"
      @left.delete(span)
      span
    end

    def done
      @test.assert_empty @left, "#{@concept.inspect}: the Ruby cell names spans this test does not check"
    end
  end

  def cell(concept)
    Cell.new(self, concept, self.class.column("Ruby")[concept])
  end

  # `name`, `#name` or `name(args)`: a public instance method of cls; returns its name.
  def method_of(cls, span)
    m = /\A#?([a-z_]\w*[?!]?)(\(.*\))?\z/.match(span)
    refute_nil m, "`#{span}` is not a method name"
    name = m[1].to_sym
    assert cls.public_method_defined?(name), "#{cls}##{name} is not a public method"
    name
  end

  # Runs the block with Warning[:deprecated] on; returns [message, category] of each warning.
  module Seen
    def warn(message, category: nil, **)
      return super unless (list = Thread.current[:pgentra_warnings])

      list << [message, category]
    end
  end
  Warning.singleton_class.prepend(Seen)

  def warnings
    was = Warning[:deprecated]
    Warning[:deprecated] = true
    Thread.current[:pgentra_warnings] = []
    yield
    Thread.current[:pgentra_warnings]
  ensure
    Thread.current[:pgentra_warnings] = nil
    Warning[:deprecated] = was
  end

  def connector(**options)
    PgEntra::Connector.new(connection_string: Harness.libpq, **options)
  end

  def test_the_ruby_column_names_members_that_exist
    c = connector

    x = cell("token")
    token = c.public_send(method_of(PgEntra::Connector, x.take("token")))
    assert_kind_of String, token
    x.done

    x = cell("connection string")
    assert_match %r{\Apostgresql://}, c.public_send(method_of(PgEntra::Connector, x.take("connection_string(format)")), :uri)
    x.done

    x = cell("database name")
    key = x.take("dbname:").delete_suffix(":").to_sym
    assert_match(/libpq/, x.text)
    assert_includes PgEntra::Connector.method(:new).parameters, [:key, key]
    assert_equal "postgres", connector(key => "postgres").conninfo.fetch(key)
    x.done

    x = cell("invalidate if still cached")
    inv = method_of(PgEntra::Connector, x.take("invalidate_if(rejected)"))
    refute c.public_send(inv, "not the cached token")
    assert c.public_send(inv, c.token)
    x.done

    err = assert_raises(PgEntra::ConfigError) { PgEntra::Connector.new(connection_string: "host=h port=70000") }

    x = cell("error kind")
    assert_kind_of Symbol, err.public_send(method_of(PgEntra::Error, x.take("#kind")))
    assert_equal :config, err.kind
    assert_match(/a Symbol/, x.text)
    x.done

    x = cell("service code (`AADSTS…`)")
    sc = method_of(PgEntra::Error, x.take("#service_code"))
    assert_nil err.public_send(sc)
    # The deprecated old name answers the same and warns in the :deprecated category.
    assert_match(/`#code`: deprecated, `:deprecated` warning/, x.text)
    old = method_of(PgEntra::Error, x.take("#code"))
    x.take(":deprecated")
    e = PgEntra::IdentityServiceError.new("x")
    e.instance_variable_set(:@service_code, "AADSTS7000215")
    seen = warnings { assert_equal e.service_code, e.public_send(old) }
    assert_equal 1, seen.size, seen.inspect
    assert_equal :deprecated, seen[0][1]
    assert_match(/use #service_code/, seen[0][0])
    x.done

    x = cell("identity request count")
    assert_equal 1, c.public_send(method_of(PgEntra::Connector, x.take("token_requests")))
    x.done

    x = cell("timeout (one token acquisition)")
    opt = x.take("timeout:").delete_suffix(":").to_sym
    assert_match(/seconds/, x.text)
    assert_includes PgEntra::Connector.method(:new).parameters, [:key, opt]
    connector(opt => 2.5)
    bad = assert_raises(PgEntra::ConfigError) { connector(opt => -1) }
    assert_match(/timeout/, bad.message)
    x.done
  end
end
