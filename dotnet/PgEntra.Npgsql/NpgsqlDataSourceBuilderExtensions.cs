// Npgsql integration of pgentra. Compiled only where Npgsql (8.0 or newer) is available: it is
// not on the Mono build machine (no NuGet, and Debian packages no Npgsql), so dotnet/test.sh leaves
// this file out. Build it with PgEntra.Npgsql.csproj (dotnet SDK, NuGet) or add it to a project
// that references Npgsql 8 or newer.
using System;
using System.Data.Common;
using System.Runtime.CompilerServices;
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
    /// await using var conn = await dataSource.OpenPgEntraConnectionAsync(connector);
    /// </code>
    /// </example>
    public static class NpgsqlDataSourceBuilderExtensions
    {
        /// <summary>
        /// Uses <paramref name="connector"/>'s current password (an Entra ID token, or the configured
        /// password in secret mode) for every new physical connection, through Npgsql's
        /// <c>UsePasswordProvider</c> (Npgsql 8 and newer): each physical open asks the connector,
        /// whose cache answers without I/O until its refresh point, so no connection gets a token
        /// older than the cache's.
        /// </summary>
        /// <remarks>
        /// When the builder's connection string has no Host, the host, port, database, user name and
        /// SSL mode are taken from the connector; otherwise only an empty user name is. The builder's
        /// connection string must not contain a Password (Npgsql refuses a password together with a
        /// password provider). The configuration is checked here (a ConfigurationException or
        /// TlsPolicyException is thrown now, not at the first connection), which may acquire a first
        /// token. The connector must outlive the data source. Open connections with
        /// <see cref="OpenPgEntraConnectionAsync"/> (or <see cref="OpenPgEntraConnection"/>) to
        /// recover from a refused token.
        /// </remarks>
        public static NpgsqlDataSourceBuilder UsePgEntra(this NpgsqlDataSourceBuilder builder, Connector connector)
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

            builder.UsePasswordProvider(
                _ => Sent(Value(Parse(connector.ConnectionString(Format.Ado)), "Password")),
                async (_, cancellationToken) =>
                {
                    string ado = await connector.ConnectionStringAsync(Format.Ado, cancellationToken).ConfigureAwait(false);
                    return Sent(Value(Parse(ado), "Password"));
                });
            return builder;
        }

        /// <summary>
        /// Opens a connection of <paramref name="dataSource"/> (built with <see cref="UsePgEntra"/>).
        /// When a new physical connection fails with a server error, its SQLSTATE and the token it
        /// sent go to <see cref="Connector.ConnectFailed"/>, which decides (pgentra's rule, the same in
        /// every language): when the server refused the token the cache holds (e.g. after the identity
        /// was deleted and created again), it is dropped (concurrent refusals cause one new identity
        /// request; the core keeps a token it fetched right after a refusal) and the connection is
        /// opened once more; otherwise the error is rethrown.
        /// </summary>
        public static async Task<NpgsqlConnection> OpenPgEntraConnectionAsync(this NpgsqlDataSource dataSource, Connector connector,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (dataSource == null) throw new ArgumentNullException(nameof(dataSource));
            if (connector == null) throw new ArgumentNullException(nameof(connector));
            var sent = new StrongBox<string>();
            SentBox.Value = sent; // flows into the password provider of this open only
            try
            {
                return await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (sent.Value != null)
            {
                if (!connector.ConnectFailed(sent.Value, e.SqlState)) throw;
            }
            return await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }

        /// <summary>As <see cref="OpenPgEntraConnectionAsync"/>, blocking.</summary>
        public static NpgsqlConnection OpenPgEntraConnection(this NpgsqlDataSource dataSource, Connector connector)
        {
            if (dataSource == null) throw new ArgumentNullException(nameof(dataSource));
            if (connector == null) throw new ArgumentNullException(nameof(connector));
            var sent = new StrongBox<string>();
            SentBox.Value = sent; // a synchronous method's change stays with the caller: undone below
            try
            {
                try
                {
                    return dataSource.OpenConnection();
                }
                catch (PostgresException e) when (sent.Value != null)
                {
                    if (!connector.ConnectFailed(sent.Value, e.SqlState)) throw;
                }
                return dataSource.OpenConnection();
            }
            finally
            {
                SentBox.Value = null;
            }
        }

        // Where the password provider notes the token it gave, for the open that asked for it: an
        // AsyncLocal holder set by OpenPgEntraConnection(Async) before it opens.
        private static readonly AsyncLocal<StrongBox<string>> SentBox = new AsyncLocal<StrongBox<string>>();

        private static string Sent(string password)
        {
            StrongBox<string> box = SentBox.Value;
            if (box != null) box.Value = password;
            return password;
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
