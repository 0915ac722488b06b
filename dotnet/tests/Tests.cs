// Self-checking tests of the PgEntra .NET wrapper (no NUnit: NuGet is not reachable here).
// Prints one line per check and a last line "N passed, M failed"; exits non-zero on failure.
// Usage: mono Tests.exe VECTORS_JSON   (see dotnet/test.sh)
using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using PgEntra;

internal static partial class Tests
{
    private static int passed, failed, skipped;

    private static void Check(string name, bool ok, string detail = null)
    {
        if (ok)
        {
            passed++;
            Console.WriteLine("ok   - " + name);
        }
        else
        {
            failed++;
            Console.WriteLine("FAIL - " + name + (detail != null ? ": " + detail : ""));
        }
    }

    private static void Skip(string name, string why)
    {
        skipped++;
        Console.WriteLine("skip - " + name + ": " + why);
    }

    // Runs a check that may throw: an unexpected exception fails it.
    private static void Run(string name, Action body)
    {
        try { body(); }
        catch (Exception e) { Check(name, false, "unexpected " + e.GetType().Name + ": " + e.Message); }
    }

    // Expects body to throw T with the given kind and a message naming `names`.
    private static void Throws<T>(string name, ErrorKind kind, string names, Action body) where T : PgEntraException
    {
        try
        {
            body();
            Check(name, false, "no exception");
        }
        catch (T e)
        {
            bool ok = e.Kind == kind && e.Message.Contains(names);
            Check(name, ok, ok ? null : "kind " + e.Kind + ", message \"" + e.Message + "\"");
        }
        catch (Exception e)
        {
            Check(name, false, "got " + e.GetType().Name + ": " + e.Message);
        }
    }

    private static string Show(string s)
    {
        return s == null ? "null" : "\"" + s + "\"";
    }

    private const string SecretDsn = "host=h port=5432 dbname=d user=u password=p sslmode=require";

    private static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "--shared-cache-worker") return SharedCacheWorker();
        string vectorsPath = args.Length > 0 ? args[0] : Path.Combine("tests", "vectors", "render.json");
        Console.WriteLine("PgEntra " + Connector.Version + " on " + Environment.Version);

        Run("version", () => Check("version", !string.IsNullOrEmpty(Connector.Version)));
        Run("formats (secret mode)", FormatsSecretMode);
        Exceptions();
        Run("dispose", Dispose);
        Run("from env", FromEnv);
        Run("async cancellation (no network)", AsyncCancelled);
        Run("vectors", () => Vectors(vectorsPath));
        Run("connect failed (secret mode)", ConnectFailedSecretMode);
        Harness();
        Run("vocabulary", () => Vocabulary(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(vectorsPath)), "..", "..", "README.md")));

        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }

    private static void FormatsSecretMode()
    {
        using (Connector c = new Connector(new ConnectorOptions { ConnectionString = SecretDsn }))
        {
            var want = new Dictionary<Format, string>
            {
                { Format.Libpq, "host=h port=5432 dbname=d user=u password=p sslmode=require" },
                { Format.Uri, "postgresql://u:p@h:5432/d?sslmode=require" },
                { Format.Ado, "Server=h;Port=5432;Database=d;User Id=u;Password=p;Ssl Mode=Require;" },
                { Format.Jdbc, "jdbc:postgresql://h:5432/d?sslmode=require&user=u&password=p" },
                { Format.Json, "{\"host\":\"h\",\"port\":5432,\"dbname\":\"d\",\"user\":\"u\",\"password\":\"p\",\"sslmode\":\"require\"}" },
                { Format.Shell, "export PGHOST='h' PGPORT='5432' PGDATABASE='d' PGUSER='u' PGPASSWORD='p' PGSSLMODE='require'" },
            };
            foreach (KeyValuePair<Format, string> kv in want)
            {
                string got = c.ConnectionString(kv.Key);
                Check("connection string " + kv.Key, got == kv.Value, "got " + Show(got));
            }
            Check("default format is libpq", c.ConnectionString() == want[Format.Libpq]);
            Check("user (secret mode)", c.User() == "u");
        }
    }

    private static void Exceptions()
    {
        Throws<ConfigurationException>("bad port: ConfigurationException naming port", ErrorKind.Configuration, "port", () =>
        {
            using (Connector c = new Connector(new ConnectorOptions { ConnectionString = "host=h port=70000" }))
                c.ConnectionString(Format.Libpq);
        });
        Throws<ConfigurationException>("token in secret mode: ConfigurationException", ErrorKind.Configuration, "", () =>
        {
            using (Connector c = new Connector(new ConnectorOptions { ConnectionString = SecretDsn }))
                c.Token();
        });
        Throws<PgEntraException>("unknown format: InvalidArgument naming format", ErrorKind.InvalidArgument, "format", () =>
        {
            using (Connector c = new Connector(new ConnectorOptions { ConnectionString = SecretDsn }))
                c.ConnectionString((Format)99);
        });
        Throws<PgEntraException>("unknown credential: InvalidArgument naming credential", ErrorKind.InvalidArgument, "credential", () =>
        {
            new Connector(new ConnectorOptions { ConnectionString = SecretDsn, Credential = (CredentialKind)42 }).Dispose();
        });
        Throws<TlsPolicyException>("sslmode=disable with a token: TlsPolicyException naming sslmode", ErrorKind.TlsPolicy, "sslmode", () =>
        {
            using (Connector c = new Connector(new ConnectorOptions
            {
                ConnectionString = "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable",
                Credential = CredentialKind.ManagedIdentity,
            }))
                c.ConnectionString(Format.Libpq);
        });
        Run("sslmode=disable with a token: refused before any identity request", () =>
        {
            using (Connector c = new Connector(new ConnectorOptions
            {
                ConnectionString = "host=127.0.0.1 port=1 dbname=d user=u sslmode=disable",
                Credential = CredentialKind.ManagedIdentity,
            }))
            {
                Exception e = null;
                try { c.ConnectionStringAsync(Format.Libpq).Wait(); }
                catch (AggregateException a) { e = a.InnerException; }
                catch (Exception x) { e = x; }
                Check("ConnectionStringAsync throws TlsPolicyException", e is TlsPolicyException, e == null ? "no exception" : e.GetType().Name);
                e = null;
                try { c.SettingsString(Format.Libpq); }
                catch (Exception x) { e = x; }
                Check("SettingsString throws TlsPolicyException", e is TlsPolicyException, e == null ? "no exception" : e.GetType().Name);
                Check("no identity request", c.TokenRequests == 0, "TokenRequests = " + c.TokenRequests);
            }
        });
        Throws<PgEntraException>("NUL in a string: InvalidArgument naming the option", ErrorKind.InvalidArgument, "ConnectionString", () =>
        {
            new Connector(new ConnectorOptions { ConnectionString = "host=h\0 port=5432" }).Dispose();
        });
        Throws<PgEntraException>("lone surrogate: InvalidUtf8 naming the option", ErrorKind.InvalidUtf8, "ClientId", () =>
        {
            new Connector(new ConnectorOptions { ConnectionString = SecretDsn, ClientId = "a\uD800b" }).Dispose();
        });
        Throws<PgEntraException>("negative timeout: InvalidArgument", ErrorKind.InvalidArgument, "Timeout", () =>
        {
            new Connector(new ConnectorOptions { ConnectionString = SecretDsn, Timeout = TimeSpan.FromSeconds(-1) }).Dispose();
        });
        Run("exception hierarchy", () =>
        {
            PgEntraException e = new IdentityServiceException("denied", "AADSTS7000215");
            Check("exception hierarchy", e.Kind == ErrorKind.IdentityService && e.ServiceCode == "AADSTS7000215"
                && e is PgEntraException && (int)ErrorKind.TlsPolicy == 5 && (int)ErrorKind.InvalidArgument == 103);
        });
    }

    private static void Dispose()
    {
        Connector c = new Connector(new ConnectorOptions { ConnectionString = SecretDsn });
        c.Dispose();
        c.Dispose();
        Check("dispose twice is safe", true);
        try
        {
            c.ConnectionString(Format.Libpq);
            Check("use after dispose throws ObjectDisposedException", false, "no exception");
        }
        catch (ObjectDisposedException)
        {
            Check("use after dispose throws ObjectDisposedException", true);
        }
        // Connectors never disposed are released by their SafeHandle's finalizer.
        for (int i = 0; i < 50; i++)
            new Connector(new ConnectorOptions { ConnectionString = SecretDsn }).ConnectionString(Format.Uri);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Check("finalizer releases undisposed connectors", true);

        // Many threads share one connector, then it is disposed while they may still run.
        Connector shared = new Connector(new ConnectorOptions { ConnectionString = SecretDsn });
        int errors = 0;
        Thread[] threads = new Thread[8];
        for (int t = 0; t < threads.Length; t++)
        {
            threads[t] = new Thread(() =>
            {
                for (int j = 0; j < 200; j++)
                {
                    try { shared.ConnectionString(Format.Json); }
                    catch (ObjectDisposedException) { return; }
                    catch (Exception) { Interlocked.Increment(ref errors); return; }
                }
            });
            threads[t].Start();
        }
        Thread.Sleep(5);
        shared.Dispose();
        foreach (Thread t in threads) t.Join();
        Check("dispose during concurrent use", errors == 0, errors + " unexpected errors");
    }

    private static void FromEnv()
    {
        Environment.SetEnvironmentVariable("PGENTRA_NETTEST_CONNECTIONSTRING", SecretDsn);
        using (Connector c = Connector.FromEnv("PGENTRA_NETTEST"))
            Check("FromEnv(prefix) reads <prefix>_CONNECTIONSTRING", c.ConnectionString(Format.Libpq) == SecretDsn);
        Environment.SetEnvironmentVariable("PGENTRA_NETTEST_CONNECTIONSTRING", "host=h port=notaport dbname=d user=u password=p");
        Throws<ConfigurationException>("FromEnv with a bad port: ConfigurationException naming port", ErrorKind.Configuration, "port", () =>
        {
            using (Connector c = Connector.FromEnv("PGENTRA_NETTEST"))
                c.ConnectionString(Format.Libpq);
        });
        Environment.SetEnvironmentVariable("PGENTRA_NETTEST_CONNECTIONSTRING", null);
    }

    private static void AsyncCancelled()
    {
        using (Connector c = new Connector(new ConnectorOptions { ConnectionString = SecretDsn }))
        {
            string s = c.ConnectionStringAsync(Format.Uri).Result;
            Check("ConnectionStringAsync", s == "postgresql://u:p@h:5432/d?sslmode=require", Show(s));
            CancellationTokenSource cts = new CancellationTokenSource();
            cts.Cancel();
            try
            {
                c.TokenAsync(cts.Token).Wait();
                Check("TokenAsync with a cancelled token", false, "no exception");
            }
            catch (AggregateException e)
            {
                Check("TokenAsync with a cancelled token", e.InnerException is OperationCanceledException, e.InnerException.GetType().Name);
            }
            catch (OperationCanceledException)
            {
                Check("TokenAsync with a cancelled token", true);
            }
        }
    }

    // ---- conformance vectors and the ADO.NET oracle ------------------------------------------

    private static readonly Dictionary<string, string> NpgsqlSslModes = new Dictionary<string, string>
    {
        { "disable", "Disable" }, { "allow", "Allow" }, { "prefer", "Prefer" },
        { "require", "Require" }, { "verify-ca", "VerifyCA" }, { "verify-full", "VerifyFull" },
    };

    private static void Vectors(string path)
    {
        List<object> vectors = (List<object>)new MiniJson(File.ReadAllText(path, Encoding.UTF8)).Parse();
        Check("vectors loaded", vectors.Count > 0, path);
        string[] formats = { "libpq", "uri", "ado", "jdbc", "json", "shell", "pdo" };
        foreach (object o in vectors)
        {
            var v = (Dictionary<string, object>)o;
            string name = (string)v["name"];
            var p = (Dictionary<string, object>)v["params"];
            var r = (Dictionary<string, object>)v["rendered"];

            // Byte-identical output in every format from a secret-mode connector.
            try
            {
                using (Connector c = new Connector(new ConnectorOptions
                {
                    ConnectionString = (string)r["libpq"],
                    Credential = CredentialKind.Password,
                }))
                {
                    var bad = new List<string>();
                    int compared = 0;
                    foreach (string f in formats)
                    {
                        if (!r.ContainsKey(f)) continue;
                        compared++;
                        Format fmt = (Format)Enum.Parse(typeof(Format), f, true);
                        if (r[f] == null)
                        {
                            // These values cannot be written in this format (a PDO DSN with ';').
                            try { c.ConnectionString(fmt); bad.Add(f + ": expected a ConfigurationException"); }
                            catch (ConfigurationException) { }
                            continue;
                        }
                        string got = c.ConnectionString(fmt);
                        if (got != (string)r[f]) bad.Add(f + ": got " + Show(got) + " want " + Show((string)r[f]));
                    }
                    if (compared != r.Count) bad.Add("vector has " + r.Count + " renderings, " + compared + " compared");
                    string user = c.User();
                    if (user != (string)p["user"]) bad.Add("User() " + Show(user));
                    Check("vector " + name + ": byte-identical in every format", bad.Count == 0, string.Join("; ", bad));
                }
            }
            catch (Exception e)
            {
                Check("vector " + name + ": byte-identical in every format", false, e.GetType().Name + ": " + e.Message);
            }

            // The ADO.NET oracle: DbConnectionStringBuilder reads back exactly the vector's params.
            AdoOracle(name, (string)r["ado"], p);
        }
    }

    private static void AdoOracle(string name, string ado, Dictionary<string, object> p)
    {
        string check = "ADO.NET oracle " + name;
        DbConnectionStringBuilder b;
        try
        {
            b = new DbConnectionStringBuilder { ConnectionString = ado };
        }
        catch (Exception e)
        {
            Check(check, false, "DbConnectionStringBuilder refused " + Show(ado) + ": " + e.Message);
            return;
        }
        var want = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            { "Server", (string)p["host"] },
            { "Port", Convert.ToString(p["port"], System.Globalization.CultureInfo.InvariantCulture) },
            { "Database", (string)p["dbname"] },
            { "User Id", (string)p["user"] },
            { "Password", (string)p["password"] },
            { "Ssl Mode", NpgsqlSslModes[(string)p["sslmode"]] },
        };
        var bad = new List<string>();
        foreach (KeyValuePair<string, string> kv in want)
        {
            object got;
            if (!b.TryGetValue(kv.Key, out got)) bad.Add(kv.Key + " missing");
            else if ((string)got != kv.Value) bad.Add(kv.Key + ": got " + Show((string)got) + " want " + Show(kv.Value));
        }
        if (b.Count != want.Count)
        {
            var keys = new List<string>();
            foreach (string k in b.Keys) keys.Add(k);
            bad.Add("keys: " + string.Join(", ", keys));
        }
        Check(check, bad.Count == 0, string.Join("; ", bad));
    }

    // ---- under the harness (tests/harness/with-harness.sh) -----------------------------------

    private static void Harness()
    {
        string host = Environment.GetEnvironmentVariable("PGENTRA_PG_HOST");
        string port = Environment.GetEnvironmentVariable("PGENTRA_PG_PORT");
        string emulator = Environment.GetEnvironmentVariable("PGENTRA_EMULATOR_HTTP");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port) || string.IsNullOrEmpty(emulator)
            || string.IsNullOrEmpty(Environment.GetEnvironmentVariable("IDENTITY_ENDPOINT"))
            || string.IsNullOrEmpty(Environment.GetEnvironmentVariable("IDENTITY_HEADER")))
        {
            const string why = "harness not running (PGENTRA_PG_HOST, PGENTRA_PG_PORT, PGENTRA_EMULATOR_HTTP, IDENTITY_ENDPOINT, IDENTITY_HEADER)";
            if (Environment.GetEnvironmentVariable("PGENTRA_REQUIRE_HARNESS") == "1") Check("harness", false, why);
            else Skip("token tests", why);
            return;
        }
        Uri control = new Uri(emulator);
        if (!IPAddress.IsLoopback(IPAddress.Parse(control.Host)))
        {
            Check("emulator is on loopback", false, emulator);
            return;
        }
        string dsn = "host=" + host + " port=" + port + " dbname=postgres sslmode=require";
        Func<Connector> connect = () => new Connector(new ConnectorOptions { ConnectionString = dsn, Timeout = TimeSpan.FromSeconds(20) });

        Run("token", () =>
        {
            using (Connector c = connect())
            {
                string token = c.Token();
                Check("token is JWT-shaped", token != null && token.Split('.').Length == 3);
                Check("token is cached", c.Token() == token);
                Check("user from the token is pgentra-app", c.User() == "pgentra-app", Show(c.User()));
                string libpq = c.ConnectionString(Format.Libpq);
                Check("libpq connection string with the token",
                    libpq == "host=" + host + " port=" + port + " dbname=postgres user=pgentra-app password=" + token + " sslmode=require", Show(libpq));
                Check("URI connection string with the token",
                    c.ConnectionString(Format.Uri) == "postgresql://pgentra-app:" + token + "@" + host + ":" + port + "/postgres?sslmode=require");
                Check("JDBC connection string with the token",
                    c.ConnectionString(Format.Jdbc) == "jdbc:postgresql://" + host + ":" + port + "/postgres?sslmode=require&user=pgentra-app&password=" + token);
                Check("JSON connection string with the token",
                    c.ConnectionString(Format.Json) == "{\"host\":\"" + host + "\",\"port\":" + port + ",\"dbname\":\"postgres\",\"user\":\"pgentra-app\",\"password\":\"" + token + "\",\"sslmode\":\"require\"}");
                string ado = c.ConnectionString(Format.Ado);
                DbConnectionStringBuilder b = new DbConnectionStringBuilder { ConnectionString = ado };
                Check("ADO.NET connection string with the token, read back by DbConnectionStringBuilder",
                    (string)b["Password"] == token && (string)b["User Id"] == "pgentra-app" && (string)b["Server"] == host
                    && (string)b["Port"] == port && (string)b["Database"] == "postgres" && (string)b["Ssl Mode"] == "Require");
                Check("TokenAsync", c.TokenAsync().Result == token);
                PsqlLogin("login through psql with the ADO.NET string read back", b);
            }
        });

        Run("TLS policy", () =>
        {
            string azure = Environment.GetEnvironmentVariable("PGENTRA_TEST_AZURE_HOST");
            using (Connector c = new Connector(new ConnectorOptions { ConnectionString = "host=" + azure + " port=" + port + " dbname=postgres sslmode=require", Timeout = TimeSpan.FromSeconds(20) }))
            {
                DbConnectionStringBuilder b = new DbConnectionStringBuilder { ConnectionString = c.ConnectionString(Format.Ado) };
                Check("an Azure name gets Ssl Mode=VerifyFull", (string)b["Ssl Mode"] == "VerifyFull", Show(c.ConnectionString(Format.Ado)));
                DbConnectionStringBuilder w = new DbConnectionStringBuilder { ConnectionString = c.ConnectionStringWith(Format.Ado, "sslmode=prefer") };
                Check("a weaker mode from the caller never replaces it", (string)w["Ssl Mode"] == "VerifyFull");
            }
            using (Connector c = connect())
            {
                DbConnectionStringBuilder w = new DbConnectionStringBuilder { ConnectionString = c.ConnectionStringWith(Format.Ado, "sslmode=prefer") };
                Check("the builder's Prefer is raised to the connector's Require", (string)w["Ssl Mode"] == "Require");
                DbConnectionStringBuilder m = new DbConnectionStringBuilder { ConnectionString = c.ConnectionStringWith(Format.Ado, "host=" + azure) };
                Check("moving to an Azure name by an override raises it to VerifyFull", (string)m["Ssl Mode"] == "VerifyFull" && (string)m["Server"] == azure);
            }
        });

        Run("connect failed", () => ConnectFailedHarness(connect, emulator, host, port));

        Run("rotation", () =>
        {
            using (Connector c = connect())
            {
                string before = c.Token();
                Check("InvalidateIf(another token) keeps the cached one", !c.InvalidateIf("not-the-token") && c.Token() == before);
                Check("InvalidateIf(the cached token) drops it once", c.InvalidateIf(before) && !c.InvalidateIf(before));
                before = c.Token();
                Control(emulator, "/control/rotate", null);
                Check("cached token kept until Invalidate", c.Token() == before);
                c.Invalidate();
                string after = c.Token();
                Check("new token after rotation and Invalidate", after != before);
                PsqlLogin("login with the new token", new DbConnectionStringBuilder { ConnectionString = c.ConnectionString(Format.Ado) });
            }
        });

        Run("async deadline", () =>
        {
            Control(emulator, "/control/rotate", null);
            Control(emulator, "/control/faults", "{\"delay_ms\": 1500}");
            Connector c = connect();
            CancellationTokenSource cts = new CancellationTokenSource(100);
            Stopwatch sw = Stopwatch.StartNew();
            try
            {
                c.TokenAsync(cts.Token).Wait();
                Check("TokenAsync ends at the cancellation", false, "no exception");
            }
            catch (AggregateException e)
            {
                Check("TokenAsync ends at the cancellation", e.InnerException is OperationCanceledException && sw.ElapsedMilliseconds < 1000,
                    e.InnerException.GetType().Name + " after " + sw.ElapsedMilliseconds + " ms");
            }
            // Dispose while the native call is still running: freed when it returns.
            c.Dispose();
            Thread.Sleep(1800);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Check("dispose while a call is in flight", true);
        });

        Run("300 async waiters hold no thread", () =>
        {
            using (Connector c = connect())
            {
                c.Invalidate();
                Control(emulator, "/control/faults", "{\"delay_ms\": 3000}");
                int threadsBefore = OsThreads();
                Stopwatch sw = Stopwatch.StartNew();
                var tasks = new List<Task<string>>();
                var sources = new List<CancellationTokenSource>();
                for (int i = 0; i < 300; i++)
                {
                    var cts = new CancellationTokenSource(100);
                    sources.Add(cts);
                    tasks.Add(c.TokenAsync(cts.Token));
                }
                Thread.Sleep(60);
                int threadsWaiting = OsThreads();
                int cancelled = 0;
                foreach (Task<string> t in tasks)
                {
                    try { t.Wait(); }
                    catch (AggregateException e) { if (e.InnerException is OperationCanceledException) cancelled++; }
                }
                long ms = sw.ElapsedMilliseconds;
                Check("300 TokenAsync calls end at their 100 ms cancellation", cancelled == 300 && ms < 1500, cancelled + " cancelled after " + ms + " ms");
                Check("waiting holds no thread per caller", threadsWaiting - threadsBefore < 30,
                    "OS threads " + threadsBefore + " before, " + threadsWaiting + " while 300 wait");
                foreach (var cts in sources) cts.Dispose();
                string token = c.TokenAsync().Result;
                Check("the one request still fills the cache", token.Length > 100 && c.Token() == token);
            }
        });

        SharedCache(emulator, dsn);
    }

    // The process's OS threads (Linux).
    private static int OsThreads()
    {
        foreach (string line in File.ReadAllLines("/proc/self/status"))
            if (line.StartsWith("Threads:")) return int.Parse(line.Substring(8).Trim());
        return -1;
    }

    // Logs in with psql (when installed) using the values DbConnectionStringBuilder read, passed
    // through the environment, and checks current_user.
    private static void PsqlLogin(string name, DbConnectionStringBuilder b)
    {
        string psql = FindPsql();
        if (psql == null)
        {
            Skip(name, "psql not found");
            return;
        }
        ProcessStartInfo si = new ProcessStartInfo(psql, "-X -A -t -w -c \"select current_user\"")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        si.EnvironmentVariables["PGHOST"] = (string)b["Server"];
        si.EnvironmentVariables["PGPORT"] = (string)b["Port"];
        si.EnvironmentVariables["PGDATABASE"] = (string)b["Database"];
        si.EnvironmentVariables["PGUSER"] = (string)b["User Id"];
        si.EnvironmentVariables["PGPASSWORD"] = (string)b["Password"];
        si.EnvironmentVariables["PGSSLMODE"] = ((string)b["Ssl Mode"]).ToLowerInvariant();
        si.EnvironmentVariables["PGCONNECT_TIMEOUT"] = "10";
        using (Process p = Process.Start(si))
        {
            string output = p.StandardOutput.ReadToEnd().Trim();
            string error = p.StandardError.ReadToEnd().Trim();
            p.WaitForExit();
            Check(name, p.ExitCode == 0 && output == "pgentra-app", "exit " + p.ExitCode + ", output " + Show(output) + ", " + error);
        }
    }

    private static string FindPsql()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            if (dir.Length > 0 && File.Exists(Path.Combine(dir, "psql"))) return Path.Combine(dir, "psql");
        if (Directory.Exists("/usr/lib/postgresql"))
            foreach (string d in Directory.GetDirectories("/usr/lib/postgresql"))
                if (File.Exists(Path.Combine(d, "bin/psql"))) return Path.Combine(d, "bin/psql");
        return null;
    }

    // POST to the emulator's control API (loopback only, no proxy).
    private static void Control(string emulator, string path, string body)
    {
        HttpWebRequest req = (HttpWebRequest)WebRequest.Create(emulator + path);
        if (!IPAddress.IsLoopback(IPAddress.Parse(req.RequestUri.Host))) throw new InvalidOperationException("not loopback: " + emulator);
        req.Method = "POST";
        req.Proxy = null;
        req.Timeout = 10000;
        byte[] data = Encoding.UTF8.GetBytes(body ?? "");
        req.ContentType = "application/json";
        req.ContentLength = data.Length;
        using (Stream s = req.GetRequestStream()) s.Write(data, 0, data.Length);
        using (HttpWebResponse resp = (HttpWebResponse)req.GetResponse())
            if (resp.StatusCode != HttpStatusCode.OK) throw new InvalidOperationException(path + ": " + resp.StatusCode);
    }
}

// A small JSON reader for the vectors file (no JSON library on Mono without NuGet): objects as
// Dictionary<string, object>, arrays as List<object>, strings, numbers as long or double, bools, null.
internal sealed class MiniJson
{
    private readonly string s;
    private int i;

    public MiniJson(string text) { s = text; }

    public object Parse()
    {
        object v = Value();
        Ws();
        if (i != s.Length) throw Error("trailing text");
        return v;
    }

    private Exception Error(string what) { return new FormatException("JSON: " + what + " at " + i); }

    private void Ws() { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }

    private object Value()
    {
        Ws();
        if (i >= s.Length) throw Error("unexpected end");
        char c = s[i];
        if (c == '{') return Obj();
        if (c == '[') return Arr();
        if (c == '"') return Str();
        if (s.Substring(i).StartsWith("true")) { i += 4; return true; }
        if (s.Substring(i).StartsWith("false")) { i += 5; return false; }
        if (s.Substring(i).StartsWith("null")) { i += 4; return null; }
        return Num();
    }

    private Dictionary<string, object> Obj()
    {
        var d = new Dictionary<string, object>();
        i++;
        Ws();
        if (s[i] == '}') { i++; return d; }
        while (true)
        {
            Ws();
            string k = Str();
            Ws();
            if (s[i++] != ':') throw Error("':' expected");
            d[k] = Value();
            Ws();
            char c = s[i++];
            if (c == '}') return d;
            if (c != ',') throw Error("',' or '}' expected");
        }
    }

    private List<object> Arr()
    {
        var l = new List<object>();
        i++;
        Ws();
        if (s[i] == ']') { i++; return l; }
        while (true)
        {
            l.Add(Value());
            Ws();
            char c = s[i++];
            if (c == ']') return l;
            if (c != ',') throw Error("',' or ']' expected");
        }
    }

    private string Str()
    {
        if (s[i] != '"') throw Error("string expected");
        i++;
        var b = new StringBuilder();
        while (true)
        {
            char c = s[i++];
            if (c == '"') return b.ToString();
            if (c != '\\') { b.Append(c); continue; }
            char e = s[i++];
            switch (e)
            {
                case '"': b.Append('"'); break;
                case '\\': b.Append('\\'); break;
                case '/': b.Append('/'); break;
                case 'b': b.Append('\b'); break;
                case 'f': b.Append('\f'); break;
                case 'n': b.Append('\n'); break;
                case 'r': b.Append('\r'); break;
                case 't': b.Append('\t'); break;
                case 'u': b.Append((char)Convert.ToInt32(s.Substring(i, 4), 16)); i += 4; break;
                default: throw Error("bad escape");
            }
        }
    }

    private object Num()
    {
        int start = i;
        while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
        string t = s.Substring(start, i - start);
        long l;
        if (long.TryParse(t, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out l)) return l;
        return double.Parse(t, System.Globalization.CultureInfo.InvariantCulture);
    }
}
