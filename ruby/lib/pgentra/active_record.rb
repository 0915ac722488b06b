# frozen_string_literal: true

# ActiveRecord's postgresql adapter with a current Entra ID token for every NEW connection.
#
#   # Gemfile
#   gem "pgentra", require: "pgentra/active_record"
#
#   # config/database.yml: no password
#   production:
#     adapter: postgresql
#     host: myserver.postgres.database.azure.com   # or leave host, database and username out:
#     database: app                                  # AZURE_POSTGRESQL_* (Service Connector)
#     username: aad_myapp                            # fills them in
#     sslmode: require
#
# pgentra takes part only where the configuration asks for it: a `pgentra: true` key in
# database.yml (`pgentra: false` opts out), or Service Connector's variables in the environment
# (AZURE_POSTGRESQL_*, or the prefix in PGENTRA_PREFIX). Elsewhere (PGPASSWORD, ~/.pgpass,
# trust, peer) ActiveRecord connects exactly as it would without pgentra.
#
# When it takes part and a connection's parameters have no password (and the host is not a
# Unix socket directory), pgentra fills in the password with a current token (and host, port, database
# and user where database.yml leaves them out, from the Service Connector variables through
# the core). One PgEntra::Connector per distinct (host, port, database, user, sslmode) serves
# every connection of that configuration, so the pool's connections share one cached token. If
# the connect fails in a way that may be a refusal of the token (SQLSTATE 28P01 where ruby-pg
# reports one; ruby-pg reports none for a failed connect, and the core then treats it as a
# possible refusal, bounded by its REFUSAL_HOLD), the token is renewed once (compare-and-
# invalidate: many connections failing together cause one identity request) and the connection
# is tried again. A pgentra error while connecting is ActiveRecord::ConnectionNotEstablished
# with the pgentra error as its cause.
#
# Works with ActiveRecord 6.1 (Debian bookworm's) and 7.x: it prepends to
# PostgreSQLAdapter.new_client(conn_params), which both call for every new connection; where
# an ActiveRecord has no new_client, to ConnectionHandling#postgresql_connection(config).

require "pgentra"
require "active_record"
require "active_record/connection_adapters/postgresql_adapter"

module PgEntra
  module ActiveRecord
    # The libpq parameters the connector takes from the connection's parameters.
    KEYS = %i[host port dbname user sslmode].freeze
    # ActiveRecord's names for two of them (database.yml's database and username).
    AR_NAMES = { dbname: :database, user: :username }.freeze

    @connectors = {}
    @lock = Mutex.new

    class << self
      # Whether pgentra supplies the password: the configuration asks for pgentra (see
      # requested?), none is given, and the host is not a Unix socket directory (local peer or
      # trust authentication).
      def applies?(conn_params, config = current_config)
        return false unless conn_params.is_a?(Hash) && requested?(config)

        pw = conn_params[:password] || conn_params["password"]
        return false unless pw.nil? || pw.to_s.empty?

        host = (conn_params[:host] || conn_params["host"]).to_s
        !host.start_with?("/")
      end

      # Whether the configuration asks for pgentra: its `pgentra` key when database.yml has one
      # (true, or a hash of options), else whether Service Connector's variables are present.
      def requested?(config)
        flag = config_value(config, :pgentra)
        return !(flag == false || flag.to_s == "false") unless flag.nil?

        service_connector_variables?
      end

      def service_connector_variables?
        prefix = ENV["PGENTRA_PREFIX"].to_s.sub(/_+\z/, "")
        prefix = "AZURE_POSTGRESQL" if prefix.empty?
        alternate = prefix.sub(/\AAZURE_/, "Azure_")
        ENV.each_key.any? { |k| k.start_with?("#{prefix}_", "#{alternate}_") }
      end

      # The database.yml configuration being connected on this thread (ActiveRecord drops keys
      # that are not libpq's, such as `pgentra`, before new_client sees them).
      def current_config
        Thread.current[:pgentra_active_record_config]
      end

      def with_config(config)
        previous = Thread.current[:pgentra_active_record_config]
        Thread.current[:pgentra_active_record_config] = config
        yield
      ensure
        Thread.current[:pgentra_active_record_config] = previous
      end

      # The connector for these connection parameters (one per configuration, thread-safe).
      # Takes libpq names (dbname, user) or ActiveRecord's (database, username).
      def connector_for(conn_params)
        opts = KEYS.to_h { |k| [k, value(conn_params, k)] }
        key = opts.values.map { |v| v&.to_s }
        @lock.synchronize do
          @connectors[key] ||= PgEntra::Connector.new(**opts)
        end
      end

      # The connection parameters with a current token: the connector's (host, port, dbname,
      # user, password, sslmode, and any other libpq parameter of the configuration) with
      # those given, which win, except the (empty) password; merged by the core, which checks
      # what leaves (database.yml's sslmode cannot lower the connector's).
      def client_params(connector, conn_params)
        given = conn_params.each_with_object({}) do |(k, v), h|
          k = k.to_sym
          h[k] = v unless v.nil? || k == :password
        end
        connector.conninfo(**given)
      end

      # Yields the parameters with a current token; if the connect fails in a way that may be
      # a refusal of that token (the core decides, see Connector#refused?), renews it once and
      # yields again. A pgentra error (configuration, credential, identity service) becomes
      # ActiveRecord::ConnectionNotEstablished with the pgentra error as its #cause, so code
      # written for ActiveRecord's connection errors sees what it expects.
      def with_token(conn_params)
        connector = connector_for(conn_params)
        renewed = false
        begin
          params = client_params(connector, conn_params)
          yield params
        rescue PgEntra::Error
          raise
        rescue StandardError => e
          raise if renewed || !connector.refused?(e, params[:password])

          renewed = true
          retry
        end
      rescue PgEntra::Error => e
        raise ::ActiveRecord::ConnectionNotEstablished, e.message
      end

      # For tests: forget the connectors (their tokens go with them).
      def reset!
        @lock.synchronize { @connectors.clear }
      end

      private

      def config_value(config, key)
        return nil unless config.respond_to?(:[])

        v = config[key]
        v = config[key.to_s] if v.nil?
        v
      end

      def value(conn_params, key)
        [key, AR_NAMES[key]].compact.each do |k|
          v = conn_params[k]
          v = conn_params[k.to_s] if v.nil?
          return v unless v.nil? || v.to_s.empty?
        end
        nil
      end
    end

    # Prepended to PostgreSQLAdapter's singleton class (ActiveRecord 6.1 and 7.x).
    module NewClient
      def new_client(conn_params)
        return super unless PgEntra::ActiveRecord.applies?(conn_params)

        PgEntra::ActiveRecord.with_token(conn_params) { |params| super(params) }
      end
    end

    # Prepended to ConnectionHandling (the first connection) and to the adapter (reconnects):
    # they know the whole database.yml configuration, which new_client no longer sees.
    module ConfigOnFirstConnect
      def postgresql_connection(config)
        PgEntra::ActiveRecord.with_config(config) { super }
      end
    end

    module ConfigOnReconnect
      def connect(*args, **kw)
        PgEntra::ActiveRecord.with_config(@config) { super }
      end
    end

    # Prepended to ActiveRecord::ConnectionHandling where the adapter has no new_client: fills
    # the configuration in before the adapter connects.
    module PostgresqlConnection
      def postgresql_connection(config)
        conn = config.to_h.transform_keys(&:to_sym)
        conn[:user] ||= conn[:username] if conn.key?(:username)
        conn[:dbname] ||= conn[:database] if conn.key?(:database)
        return super unless PgEntra::ActiveRecord.applies?(conn, config)

        PgEntra::ActiveRecord.with_token(conn) do |params|
          filled = config.to_h.transform_keys(&:to_sym).merge(
            host: params[:host], port: params[:port], database: params[:dbname],
            username: params[:user], password: params[:password], sslmode: params[:sslmode]
          )
          super(filled)
        end
      end
    end

    ADAPTER = ::ActiveRecord::ConnectionAdapters::PostgreSQLAdapter
    HOOK =
      if ADAPTER.respond_to?(:new_client)
        ADAPTER.singleton_class.prepend(NewClient)
        if ::ActiveRecord::ConnectionHandling.method_defined?(:postgresql_connection) ||
           ::ActiveRecord::ConnectionHandling.private_method_defined?(:postgresql_connection)
          ::ActiveRecord::ConnectionHandling.prepend(ConfigOnFirstConnect)
        end
        ADAPTER.prepend(ConfigOnReconnect) if ADAPTER.method_defined?(:connect) || ADAPTER.private_method_defined?(:connect)
        :new_client
      elsif ::ActiveRecord::ConnectionHandling.method_defined?(:postgresql_connection) ||
            ::ActiveRecord::ConnectionHandling.private_method_defined?(:postgresql_connection)
        ::ActiveRecord::ConnectionHandling.prepend(PostgresqlConnection)
        :postgresql_connection
      else
        raise LoadError, "pgentra/active_record: this ActiveRecord (#{::ActiveRecord::VERSION::STRING}) has neither " \
                         "PostgreSQLAdapter.new_client nor ConnectionHandling#postgresql_connection"
      end
  end
end
