// Npgsql integration of pgentra. Compiled only where Npgsql (7.0 or newer) is available: it is
// not on the Mono build machine (no NuGet), so dotnet/test.sh leaves this file out. Build it with
// PgEntra.Npgsql.csproj (dotnet SDK, NuGet) or add it to a project that references Npgsql.
using System;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;

namespace PgEntra.Npgsql
{
    /// <summary>
    /// Connects an <see cref="NpgsqlDataSource"/> to Azure Database for PostgreSQL with Entra ID
    /// tokens from a pgentra <see cref="Connector"/>.
    /// </summary>
    /// <example>
    /// <code>
    /// using var connector = Connector.FromEnv();            // AZURE_POSTGRESQL_*
    /// var builder = new NpgsqlDataSourceBuilder();          // empty: host, port, database, user and
    /// builder.UsePgEntra(connector);                        // SSL mode come from pgentra
    /// await using var dataSource = builder.Build();
    /// await using var conn = await dataSource.OpenConnectionAsync();
    /// </code>
    /// </example>
    public static class NpgsqlDataSourceBuilderExtensions
    {
        /// <summary>How often the password (token) is fetched again by default. The connector caches
        /// the token and refreshes it ahead of expiry, so a fetch is usually a cache read.</summary>
        public static readonly TimeSpan DefaultRefreshInterval = TimeSpan.FromMinutes(5);

        /// <summary>How soon a failed fetch is retried by default.</summary>
        public static readonly TimeSpan DefaultRetryInterval = TimeSpan.FromSeconds(10);

        /// <summary>
        /// Uses <paramref name="connector"/>'s current password (an Entra ID token, or the configured
        /// password in secret mode) for every new physical connection, through Npgsql's
        /// <c>UsePeriodicPasswordProvider</c> (refresh every 5 minutes, retry after 10 seconds on
        /// failure).
        /// </summary>
        /// <remarks>
        /// When the builder's connection string has no Host, the host, port, database, user name and
        /// SSL mode are taken from the connector; otherwise only an empty user name is. The builder's
        /// connection string must not contain a Password (Npgsql refuses a password together with a
        /// password provider). The configuration is checked here (a ConfigurationException or
        /// TlsPolicyException is thrown now, not at the first connection), which may acquire a first
        /// token. The connector must outlive the data source.
        /// </remarks>
        public static NpgsqlDataSourceBuilder UsePgEntra(this NpgsqlDataSourceBuilder builder, Connector connector)
        {
            return UsePgEntra(builder, connector, DefaultRefreshInterval, DefaultRetryInterval);
        }

        /// <summary>As <see cref="UsePgEntra(NpgsqlDataSourceBuilder, Connector)"/>, with explicit
        /// refresh and retry intervals.</summary>
        public static NpgsqlDataSourceBuilder UsePgEntra(this NpgsqlDataSourceBuilder builder, Connector connector,
            TimeSpan refreshInterval, TimeSpan retryInterval)
        {
            if (builder == null) throw new ArgumentNullException(nameof(builder));
            if (connector == null) throw new ArgumentNullException(nameof(connector));

            NpgsqlConnectionStringBuilder settings = builder.ConnectionStringBuilder;
            DbConnectionStringBuilder current;
            if (string.IsNullOrEmpty(settings.Host))
            {
                current = Parse(connector.ConnectionString(Format.Ado));
                settings.Host = Value(current, "Server");
                settings.Port = int.Parse(Value(current, "Port"), System.Globalization.CultureInfo.InvariantCulture);
                settings.Database = Value(current, "Database");
            }
            else
            {
                // The builder's own host, port, database and SSL mode go through pgentra's final
                // check: Npgsql's default (Prefer) or a weaker mode never carries the token.
                string mode = settings.SslMode.ToString().ToLowerInvariant().Replace("verifyca", "verify-ca").Replace("verifyfull", "verify-full");
                string overrides = "host='" + Quote(settings.Host) + "' port=" + settings.Port + " sslmode=" + mode
                    + (string.IsNullOrEmpty(settings.Database) ? "" : " dbname='" + Quote(settings.Database) + "'");
                current = Parse(connector.ConnectionStringWith(Format.Ado, overrides));
            }
            settings.SslMode = (SslMode)Enum.Parse(typeof(SslMode), Value(current, "Ssl Mode"), true);
            if (string.IsNullOrEmpty(settings.Username))
                settings.Username = Value(current, "User Id");

            builder.UsePeriodicPasswordProvider(
                async (_, cancellationToken) =>
                {
                    string ado = await connector.ConnectionStringAsync(Format.Ado, cancellationToken).ConfigureAwait(false);
                    return Value(Parse(ado), "Password");
                },
                refreshInterval,
                retryInterval);
            return builder;
        }

        private static string Quote(string v)
        {
            return v.Replace("\\", "\\\\").Replace("'", "\\'");
        }

        private static DbConnectionStringBuilder Parse(string ado)
        {
            return new DbConnectionStringBuilder { ConnectionString = ado };
        }

        private static string Value(DbConnectionStringBuilder b, string key)
        {
            object v;
            return b.TryGetValue(key, out v) ? (string)v : null;
        }
    }
}
