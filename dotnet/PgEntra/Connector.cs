using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace PgEntra
{
    /// <summary>Forms of <see cref="Connector.ConnectionString"/> (the C API's pgentra_format).</summary>
    public enum Format : uint
    {
        /// <summary>libpq keyword/value: host=... port=... dbname=... user=... password=... sslmode=...</summary>
        Libpq = 0,
        /// <summary>postgresql://user:password@host:port/dbname?sslmode=...</summary>
        Uri = 1,
        /// <summary>ADO.NET / Npgsql: Server=...;Port=...;Database=...;User Id=...;Password=...;Ssl Mode=...;</summary>
        Ado = 2,
        /// <summary>jdbc:postgresql://host:port/dbname?sslmode=...&amp;user=...&amp;password=...</summary>
        Jdbc = 3,
        /// <summary>A JSON object with host, port, dbname, user, password, sslmode.</summary>
        Json = 4,
        /// <summary>export PGHOST='...' PGPORT='...' ..., single-quoted for POSIX shells.</summary>
        Shell = 5,
        /// <summary>PHP PDO's pgsql: DSN with user and password; a value holding ';' cannot be carried (ConfigurationException).</summary>
        Pdo = 6,
    }

    /// <summary>Credentials that <see cref="ConnectorOptions.Credential"/> can force (the C API's
    /// pgentra_credential).</summary>
    public enum CredentialKind : uint
    {
        /// <summary>Not forced: PGENTRA_CREDENTIAL if set, else the credential chain.</summary>
        Auto = 0,
        /// <summary>The configured password (secret mode): no identity request at all.</summary>
        Password = 1,
        /// <summary>A service principal with a client secret.</summary>
        ClientSecret = 2,
        /// <summary>A service principal with a certificate (AZURE_CLIENT_CERTIFICATE_PATH, PEM).</summary>
        ClientCertificate = 3,
        /// <summary>Workload identity (AZURE_FEDERATED_TOKEN_FILE).</summary>
        WorkloadIdentity = 4,
        /// <summary>Managed identity (App Service / Functions / Container Apps, Azure Arc, IMDS).</summary>
        ManagedIdentity = 5,
        /// <summary>The Azure CLI.</summary>
        AzureCli = 6,
        /// <summary>The Azure Developer CLI.</summary>
        AzureDeveloperCli = 7,
    }

    /// <summary>Values passed by code to the <see cref="Connector"/> constructor. Every property that
    /// is set (non-null) wins over the environment.</summary>
    public sealed class ConnectorOptions
    {
        /// <summary>Prefix of the Service Connector variables; null: PGENTRA_PREFIX, else AZURE_POSTGRESQL.</summary>
        public string Prefix { get; set; }
        /// <summary>A connection string in libpq, URI, ADO.NET or JDBC form (detected); null: from
        /// the environment (&lt;prefix&gt;_CONNECTIONSTRING).</summary>
        public string ConnectionString { get; set; }
        /// <summary>Client id of a user-assigned managed identity or a service principal.</summary>
        public string ClientId { get; set; }
        /// <summary>Tenant id of a service principal.</summary>
        public string TenantId { get; set; }
        /// <summary>Client secret of a service principal.</summary>
        public string ClientSecret { get; set; }
        /// <summary>Token scope, ending in /.default; null: from the host's cloud (or PGENTRA_SCOPE).</summary>
        public string Scope { get; set; }
        /// <summary>Forces one credential; Auto (the default) forces nothing.</summary>
        public CredentialKind Credential { get; set; }
        /// <summary>Let a token travel with an sslmode that does not guarantee TLS (local test servers
        /// only); null: PGENTRA_ALLOW_INSECURE decides.</summary>
        public bool? AllowInsecure { get; set; }
        /// <summary>Keep SSL Mode Require for Azure servers instead of VerifyFull; null:
        /// PGENTRA_ALLOW_UNVERIFIED_TLS decides.</summary>
        public bool? AllowUnverifiedTls { get; set; }
        /// <summary>Total deadline of one token acquisition, retries included (rounded up to whole
        /// milliseconds); null or zero: PGENTRA_TIMEOUT or 30 seconds.</summary>
        public TimeSpan? Timeout { get; set; }
    }

    /// <summary>
    /// A connector to one Azure Database for PostgreSQL server: its configuration and its token
    /// cache, in pgentra's Rust core (libpgentra). Thread-safe: share one per process. Dispose it
    /// when done (disposing twice is safe); a connector that is never disposed is released by the
    /// finalizer of its SafeHandle.
    /// </summary>
    public sealed class Connector : IDisposable
    {
        private readonly ConnectorHandle handle;

        private Connector(ConnectorHandle handle)
        {
            this.handle = handle;
        }

        /// <summary>Creates a connector from <paramref name="options"/>; the properties that are set
        /// win over the environment. No network request is made here.</summary>
        /// <exception cref="PgEntraException">ConfigurationException and others, naming the key at fault.</exception>
        public Connector(ConnectorOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            NativeOptions o = new NativeOptions();
            NativeMethods.pgentra_options_init(ref o);
            List<KeyValuePair<IntPtr, int>> allocated = new List<KeyValuePair<IntPtr, int>>();
            try
            {
                o.Prefix = Utf8.Alloc("Prefix", options.Prefix, allocated);
                o.ConnectionString = Utf8.Alloc("ConnectionString", options.ConnectionString, allocated);
                o.ClientId = Utf8.Alloc("ClientId", options.ClientId, allocated);
                o.TenantId = Utf8.Alloc("TenantId", options.TenantId, allocated);
                o.ClientSecret = Utf8.Alloc("ClientSecret", options.ClientSecret, allocated);
                o.Scope = Utf8.Alloc("Scope", options.Scope, allocated);
                o.Credential = (uint)options.Credential;
                if (options.AllowInsecure.HasValue) o.AllowInsecure = options.AllowInsecure.Value ? 1 : 0;
                if (options.AllowUnverifiedTls.HasValue) o.AllowUnverifiedTls = options.AllowUnverifiedTls.Value ? 1 : 0;
                if (options.Timeout.HasValue)
                {
                    TimeSpan t = options.Timeout.Value;
                    if (t < TimeSpan.Zero)
                        throw new PgEntraException(ErrorKind.InvalidArgument, "Timeout is negative", null);
                    double ms = Math.Ceiling(t.TotalMilliseconds);
                    o.TimeoutMs = ms > uint.MaxValue ? uint.MaxValue : (uint)ms;
                }
                ConnectorHandle h;
                int rc = NativeMethods.pgentra_connector_new(ref o, out h);
                handle = Check(rc, h);
            }
            finally
            {
                Utf8.WipeAndFree(allocated);
            }
        }

        /// <summary>Creates a connector from the process environment (Service Connector's
        /// &lt;prefix&gt;_* variables and the Azure SDK variables). <paramref name="prefix"/> null
        /// means PGENTRA_PREFIX, else AZURE_POSTGRESQL. No network request is made here.</summary>
        public static Connector FromEnv(string prefix = null)
        {
            List<KeyValuePair<IntPtr, int>> allocated = new List<KeyValuePair<IntPtr, int>>();
            try
            {
                IntPtr p = Utf8.Alloc("prefix", prefix, allocated);
                ConnectorHandle h;
                int rc = NativeMethods.pgentra_connector_from_env(p, out h);
                return new Connector(Check(rc, h));
            }
            finally
            {
                Utf8.WipeAndFree(allocated);
            }
        }

        /// <summary>The version of libpgentra, e.g. "0.1.0".</summary>
        public static string Version
        {
            get { return Utf8.Read(NativeMethods.pgentra_version()); }
        }

        /// <summary>The current access token: acquired, or refreshed ahead of expiry, when needed
        /// (blocking, up to the connector's timeout; a fresh cached token takes no lock). Throws a
        /// ConfigurationException in secret mode (a password is configured), where no token is
        /// ever acquired: use ConnectionString, which works in both modes.</summary>
        public string Token()
        {
            IntPtr s;
            int rc = NativeMethods.pgentra_token(Handle, out s);
            return Take(rc, s);
        }

        /// <summary>The connection string in <paramref name="format"/> with the configured password
        /// or a current token. In secret mode no network request is made.</summary>
        public string ConnectionString(Format format = Format.Libpq)
        {
            IntPtr s;
            int rc = NativeMethods.pgentra_connection_string(Handle, (uint)format, out s);
            return Take(rc, s);
        }

        /// <summary>The connection string after the caller's own values, given as a libpq
        /// keyword/value string (for instance the host and SSL mode of an Npgsql builder): pgentra
        /// merges them and checks the result as it will leave. A weaker sslmode never replaces a
        /// stricter one, and an Azure server name gets verify-full.</summary>
        public string ConnectionStringWith(Format format, string overrides)
        {
            var allocated = new System.Collections.Generic.List<System.Collections.Generic.KeyValuePair<IntPtr, int>>();
            try
            {
                IntPtr o = Utf8.Alloc("overrides", overrides, allocated);
                IntPtr s;
                int rc = NativeMethods.pgentra_connection_string_with(Handle, (uint)format, o, out s);
                return Take(rc, s);
            }
            finally
            {
                Utf8.WipeAndFree(allocated);
            }
        }

        /// <summary>The connection string in <paramref name="format"/> without a password or token,
        /// and without waiting for one: the settings a driver's configuration keeps when each
        /// connection gets its password separately. The TLS policy is applied as for
        /// <see cref="ConnectionString"/>, so what it refuses is refused here, with no request.</summary>
        public string SettingsString(Format format = Format.Libpq)
        {
            IntPtr s;
            int rc = NativeMethods.pgentra_settings_string(Handle, (uint)format, IntPtr.Zero, out s);
            return Take(rc, s);
        }

        /// <summary>The database user: explicit, else configured, else from the token's claims
        /// (which may acquire a token).</summary>
        public string User()
        {
            IntPtr s;
            int rc = NativeMethods.pgentra_user(Handle, out s);
            return Take(rc, s);
        }

        /// <summary>Drops the cached token so that the next call acquires a new one (for instance
        /// after the server rejected a token).</summary>
        public void Invalidate()
        {
            NativeMethods.pgentra_invalidate(Handle);
        }

        /// <summary>Drops the cached token only if it is <paramref name="rejected"/> (the token the
        /// server refused), so that many connections refused together cause one new identity
        /// request. Returns whether it was dropped.</summary>
        public bool InvalidateIf(string rejected)
        {
            var allocated = new System.Collections.Generic.List<System.Collections.Generic.KeyValuePair<IntPtr, int>>();
            try
            {
                IntPtr r = Utf8.Alloc("rejected", rejected, allocated);
                return r != IntPtr.Zero && NativeMethods.pgentra_invalidate_if(Handle, r) == 1;
            }
            finally
            {
                Utf8.WipeAndFree(allocated);
            }
        }

        /// <summary>A connect with <paramref name="token"/> (the password this connector handed out)
        /// failed: pgentra decides, by the rule every pgentra binding shares, whether to connect once
        /// more with a current token. <paramref name="sqlstate"/> is the server's SQLSTATE (e.g.
        /// Npgsql's <c>PostgresException.SqlState</c>; null when there is none);
        /// <paramref name="usedPassword"/> whether the failed connection sent the password (null:
        /// unknown). A SQLSTATE other than 28P01, or none with usedPassword false, is not a refusal of
        /// the token: nothing is dropped and the answer is false. Otherwise the token is dropped unless
        /// another connection already replaced it (many refusals at once cause one identity
        /// request), and the answer is true when the next token will be another one; false when the
        /// connector keeps it (fetched right after another refusal and refused again: the role is at
        /// fault, not the token) and in secret mode. Makes no network request. Throws a
        /// PgEntraException naming the argument for a null token.</summary>
        public bool ConnectFailed(string token, string sqlstate, bool? usedPassword = null)
        {
            var allocated = new System.Collections.Generic.List<System.Collections.Generic.KeyValuePair<IntPtr, int>>();
            try
            {
                IntPtr t = Utf8.Alloc("token", token, allocated);
                IntPtr s = Utf8.Alloc("sqlstate", sqlstate, allocated);
                int used = usedPassword.HasValue ? (usedPassword.Value ? 1 : 0) : -1;
                int retry;
                int rc = NativeMethods.pgentra_connect_failed(Handle, t, s, used, out retry);
                if (rc != NativeMethods.Ok) throw LastError(rc);
                return retry == 1;
            }
            finally
            {
                Utf8.WipeAndFree(allocated);
            }
        }

        /// <summary>The number of token requests this connector has made to the identity service
        /// (0 in secret mode).</summary>
        public ulong TokenRequests
        {
            get
            {
                ulong n;
                int rc = NativeMethods.pgentra_token_requests(Handle, out n);
                if (rc != NativeMethods.Ok) throw LastError(rc);
                return n;
            }
        }

        /// <summary>The access token, without holding a thread while the identity service answers:
        /// a fresh cached token returns at once; otherwise the request runs on pgentra's own runtime
        /// (pgentra_token_begin) and this method polls it on timers (1 ms, doubling to 25 ms).
        /// Cancellation ends the wait at once; the request goes on and fills the cache. (No
        /// completion callback: under Mono, the native threads a callback attaches keep the process
        /// from exiting.)</summary>
        public async Task<string> TokenAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            cancellationToken.ThrowIfCancellationRequested();
            IntPtr op;
            int rc = NativeMethods.pgentra_token_begin(Handle, out op);
            if (rc != NativeMethods.Ok) throw LastError(rc);
            try
            {
                int delay = 1;
                while (true)
                {
                    IntPtr s;
                    rc = NativeMethods.pgentra_token_poll(op, out s);
                    if (rc != NativeMethods.Pending) return Take(rc, s);
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                    delay = Math.Min(delay * 2, 25);
                }
            }
            finally
            {
                NativeMethods.pgentra_token_op_free(op);
            }
        }

        /// <summary><see cref="ConnectionString"/> after waiting for a current token as
        /// <see cref="TokenAsync"/> does (no thread held). With a configured password (no token at
        /// all) it returns at once.</summary>
        public async Task<string> ConnectionStringAsync(Format format = Format.Libpq,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            // What the TLS policy refuses is refused before any identity request (the settings,
            // rendered without a token, carry the same check).
            SettingsString(format);
            try
            {
                await TokenAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ConfigurationException)
            {
                // A configured password (no token), or a configuration error that
                // ConnectionString reports the same way; neither makes a request.
            }
            return ConnectionString(format);
        }

        /// <summary>Releases the connector and its token cache (wiping the token). Safe to call
        /// more than once; a call in flight on another thread keeps the native connector alive
        /// until it returns. Methods called afterwards throw ObjectDisposedException.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        private ConnectorHandle Handle
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("PgEntra.Connector");
                return handle;
            }
        }

        // The error message and code are thread-local in the C API: they are read right after the
        // failed call, on the same thread (a managed thread stays on its OS thread in Mono and .NET).
        private static PgEntraException LastError(int rc)
        {
            return PgEntraException.FromStatus(rc,
                Utf8.Read(NativeMethods.pgentra_last_error_message()),
                Utf8.Read(NativeMethods.pgentra_last_error_code()));
        }

        private static ConnectorHandle Check(int rc, ConnectorHandle h)
        {
            if (rc != NativeMethods.Ok)
            {
                PgEntraException e = LastError(rc);
                if (h != null) h.Dispose();
                throw e;
            }
            return h;
        }

        private static string Take(int rc, IntPtr s)
        {
            if (rc != NativeMethods.Ok)
            {
                PgEntraException e = LastError(rc);
                Utf8.TakeAndFree(s); // NULL on error by contract; freed if ever not
                throw e;
            }
            return Utf8.TakeAndFree(s);
        }
    }
}
