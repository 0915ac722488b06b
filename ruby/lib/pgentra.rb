# frozen_string_literal: true

# pgentra: passwordless access to Azure Database for PostgreSQL with Microsoft Entra ID tokens.
#
#   require "pgentra"
#   conn = PgEntra.connect                         # a PG::Connection with a current token
#   conn = PG.connect(**PgEntra.conninfo)          # the same by hand
#   PgEntra.connection_string(:uri)                # libpq, uri, ado, jdbc, json
#
# Configuration comes from Service Connector's AZURE_POSTGRESQL_* variables (any connection
# string dialect, or discrete variables), the Azure SDK variables, and keyword arguments of
# PgEntra::Connector.new, which win. Tokens come from the credential chain (managed identity,
# service principal, workload identity, Azure CLI, azd) and live in a refresh-ahead cache in
# the Rust core (the native extension pgentra/pgentra_ext).
#
# Errors: PgEntra::Error < StandardError, with #kind (a Symbol), #kind_id and #service_code (the
# identity service's code such as "AADSTS7000215", or nil; #code is its deprecated old name),
# and one subclass per kind:
# ConfigError, CredentialError, IdentityServiceError, NetworkError, TlsPolicyError,
# DatabaseError, InternalError. Messages name the variable or key at fault and never contain a
# token, client secret or password.
#
# ActiveRecord: require "pgentra/active_record".

require_relative "pgentra/version"

begin
  require_relative "pgentra/pgentra_ext"
rescue LoadError => e
  raise LoadError,
        "pgentra: cannot load the native extension pgentra/pgentra_ext.so (#{e.message}); install the " \
        "platform gem (gem install --local pgentra-#{PgEntra::VERSION}-x86_64-linux.gem) or, in a checkout, run ruby/build.sh"
end

module PgEntra
  class Error
    # Deprecated: the old name of #service_code, kept for one release. Warns in the
    # :deprecated category (shown when Warning[:deprecated] is on, e.g. ruby -W:deprecated).
    def code
      warn("PgEntra::Error#code is deprecated; use #service_code", category: :deprecated, uplevel: 1)
      service_code
    end
  end

  # Reaches one Azure Database for PostgreSQL server with a current Entra ID token (or the
  # configured password). Thread-safe; share one per process: it holds the token cache, and any
  # number of threads asking at once cause one identity request.
  class Connector
    class << self
      # Values given here win over the environment; nil means "from the environment".
      # credential: "auto" (default), "managed-identity", "client-secret", "client-certificate",
      # "workload-identity", "azure-cli", "azd", "password". allow_insecure: false forces nothing
      # (PGENTRA_ALLOW_INSECURE still applies). timeout: seconds for one token acquisition.
      def new(prefix: nil, connection_string: nil, host: nil, port: nil, dbname: nil, user: nil,
              password: nil, sslmode: nil, client_id: nil, tenant_id: nil, client_secret: nil,
              certificate_path: nil, federated_token_file: nil, credential: nil, scope: nil,
              authority_host: nil, allow_insecure: nil, allow_unverified_tls: nil, timeout: nil)
        _new({
          prefix: prefix, connection_string: connection_string, host: host, port: port, dbname: dbname,
          user: user, password: password, sslmode: sslmode, client_id: client_id, tenant_id: tenant_id,
          client_secret: client_secret, certificate_path: certificate_path,
          federated_token_file: federated_token_file, credential: credential, scope: scope,
          authority_host: authority_host, allow_insecure: allow_insecure,
          allow_unverified_tls: allow_unverified_tls, timeout: timeout
        }.compact)
      end
    end

    # Connection parameters with a current token (or the configured password), ready for
    # PG.connect(**h): host, port (Integer), dbname, user, password, sslmode, and any other
    # libpq parameter of the configuration, as Symbol keys. Overrides (libpq keywords, Symbol
    # or String keys) replace keys, nil removes one; the core merges them and checks the
    # result as it will leave: a weaker sslmode never replaces a stricter one, and an Azure
    # server name gets verify-full.
    def conninfo(**overrides)
      info = _params(overrides.map { |key, value| [key.to_s, value.nil? ? nil : value.to_s] })
      # Where the core kept the caller's value, hand back the caller's object (e.g. an Integer).
      overrides.each do |key, value|
        key = key.to_sym
        info[key] = value if !value.nil? && info[key] == value.to_s
      end
      info
    end

    # The connection string with a current token: :libpq (default), :uri, :ado, :jdbc, :json
    # (also :shell and :pdo). A String works too.
    def connection_string(format = :libpq)
      _connection_string(format)
    end

    # A PG::Connection with a current token. If the connect fails while the token is still the
    # cached one and the failure may be a refusal (see #refused?), the token is renewed once
    # (compare-and-invalidate, so that many connections failing together cause one identity
    # request) and the connection tried again. Nothing is retried when the caller passes its
    # own password.
    def connect(**overrides)
      require "pg"
      ours = !(overrides.key?(:password) || overrides.key?("password"))
      renewed = false
      begin
        params = conninfo(**overrides)
        PG.connect(**params)
      rescue PG::ConnectionBad => e
        raise unless ours && !renewed && refused?(e, params[:password])

        renewed = true
        retry
      end
    end

    # A connect with `token` failed with `error`: whether to connect again, once, with a new
    # token. What ruby-pg can tell goes to the core, which decides (PgEntra.failure_facts);
    # messages are never read (servers localize them).
    def refused?(error, token)
      return false if token.nil? || password_mode?

      return false unless PgEntra.auth_failure?(error)

      sqlstate, used_password = PgEntra.failure_facts(error)
      _connect_failed(token, sqlstate, used_password)
    end
  end

  @default_connector = nil
  @default_lock = Mutex.new

  class << self
    # The process-wide connector built from the environment on first use (thread-safe). A
    # configuration error is raised on every call until the environment is fixed. After fork
    # the child keeps it: the core renews its runtime there and keeps the inherited token.
    def default_connector
      @default_connector || @default_lock.synchronize { @default_connector ||= Connector.new }
    end

    # Use this connector for the module-level methods (e.g. one with a custom prefix).
    def default_connector=(connector)
      raise TypeError, "expected a PgEntra::Connector, got #{connector.class}" unless connector.nil? || connector.is_a?(Connector)

      @default_lock.synchronize { @default_connector = connector }
    end

    def token
      default_connector.token
    end

    def conninfo(**overrides)
      default_connector.conninfo(**overrides)
    end

    def connection_string(format = :libpq)
      default_connector.connection_string(format)
    end

    def connect(**overrides)
      default_connector.connect(**overrides)
    end

    def user
      default_connector.user
    end

    def invalidate
      default_connector.invalidate
    end

    # `error` and its causes (ActiveRecord wraps PG's errors), at most 5.
    def chain(error)
      out = []
      e = error
      while e && out.size < 5
        out << e
        e = e.cause
      end
      out
    end

    # What a failed connect tells, never read from its message: [sqlstate, used_password].
    # The SQLSTATE of a PG::Error's result (ruby-pg has none for a failed connect: libpq keeps
    # it to itself), else libpq's PQconnectionUsedPassword of the failed connection where
    # ruby-pg still holds it open (1.4 and 1.5 close it: nil), else [nil, nil], which the core
    # treats as a possible refusal, bounded by its REFUSAL_HOLD.
    def failure_facts(error)
      chain(error).each do |e|
        next unless defined?(::PG::Error) && e.is_a?(::PG::Error)

        code = begin
          e.result&.error_field(::PG::PG_DIAG_SQLSTATE)
        rescue StandardError
          nil
        end
        return [code, nil] if code.is_a?(String) && !code.empty?

        used = begin
          c = e.respond_to?(:connection) ? e.connection : nil
          c.respond_to?(:connection_used_password) ? c.connection_used_password : nil
        rescue StandardError
          nil
        end
        return [nil, used] if [true, false].include?(used)
      end
      [nil, nil]
    end

    # Whether a driver's connect error may be the server refusing the password, by the core's
    # rule (pgentra::recovery): SQLSTATE 28P01 (PG::InvalidPassword); without a SQLSTATE, a
    # failed libpq connect that had sent a password; with neither fact (ruby-pg 1.4 and 1.5 for
    # a failed connect), any PG::ConnectionBad. Message text is never read.
    def auth_failure?(error)
      errors = chain(error)
      return true if errors.any? { |e| defined?(::PG::InvalidPassword) && e.is_a?(::PG::InvalidPassword) }

      sqlstate, used_password = failure_facts(error)
      return false if sqlstate.nil? && used_password.nil? && errors.none? { |e| defined?(::PG::ConnectionBad) && e.is_a?(::PG::ConnectionBad) }

      _may_be_refusal(sqlstate, used_password)
    end
  end
end
