// The shared token cache (issue #16) through the .NET wrapper (the C ABI), with sharing ON as
// in production: worker processes (this Tests.exe started again with --shared-cache-worker)
// share one identity request. The harness keeps sharing off for the rest of the suite
// (PGENTRA_SHARED_CACHE=0); these checks turn it on for their own processes only, with a fresh
// private cache folder under $PGENTRA_TEST_DIR, and count requests at the emulator. Part of
// Tests (see Tests.cs).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using PgEntra;

internal static partial class Tests
{
    private const int SharedWorkers = 8;

    // A worker: its own connector, a token (after "go" on stdin when SHARED_TEST_GATE=1), and
    // one tab-separated line: pid, token, requests, exception type, service code, ADO.NET
    // string, message.
    private static int SharedCacheWorker()
    {
        using (Connector c = new Connector(new ConnectorOptions
        {
            ConnectionString = Environment.GetEnvironmentVariable("SHARED_TEST_LIBPQ"),
            Credential = CredentialKind.ManagedIdentity,
            Timeout = TimeSpan.FromSeconds(10),
        }))
        {
            if (Environment.GetEnvironmentVariable("SHARED_TEST_GATE") == "1")
            {
                Console.WriteLine("ready");
                Console.Out.Flush();
                if (Console.ReadLine() != "go") return 1;
            }
            string token = "", error = "", code = "", ado = "", message = "";
            try
            {
                token = c.Token();
                ado = c.ConnectionString(Format.Ado);
            }
            catch (PgEntraException e)
            {
                error = e.GetType().Name;
                code = e.ServiceCode ?? "";
                message = e.Message.Replace('\t', ' ').Replace('\n', ' ');
            }
            Console.WriteLine(string.Join("\t", Process.GetCurrentProcess().Id, token, c.TokenRequests, error, code, ado, message));
            return 0;
        }
    }

    private sealed class WorkerReport
    {
        public string Pid, Token, Error, Code, Ado, Message;
        public ulong Requests;
    }

    private sealed class SharedCacheRun
    {
        private readonly string emulator, dsn;
        public readonly string Folder;

        public SharedCacheRun(string emulator, string dsn, string name)
        {
            this.emulator = emulator;
            this.dsn = dsn;
            Folder = Path.Combine(Environment.GetEnvironmentVariable("PGENTRA_TEST_DIR"), "dotnet-shared-" + name);
            if (Directory.Exists(Folder)) Directory.Delete(Folder, true);
            Directory.CreateDirectory(Folder);
            Process.Start("chmod", "700 " + Folder).WaitForExit();
            Control(emulator, "/control/reset", "");
        }

        public void Done()
        {
            Control(emulator, "/control/reset", "");
            Directory.Delete(Folder, true);
        }

        public long Requests()
        {
            HttpWebRequest req = (HttpWebRequest)WebRequest.Create(emulator + "/control/stats");
            req.Proxy = null;
            req.Timeout = 10000;
            using (WebResponse resp = req.GetResponse())
            using (StreamReader r = new StreamReader(resp.GetResponseStream()))
                return (long)((Dictionary<string, object>)new MiniJson(r.ReadToEnd()).Parse())["msi_requests"];
        }

        public Process Start(string sharing, bool gate)
        {
            ProcessStartInfo si = new ProcessStartInfo("mono", "--debug \"" + typeof(Tests).Assembly.Location + "\" --shared-cache-worker")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardInput = true,
            };
            si.EnvironmentVariables["PGENTRA_SHARED_CACHE"] = sharing;
            si.EnvironmentVariables["PGENTRA_CACHE_DIR"] = Folder;
            si.EnvironmentVariables["SHARED_TEST_LIBPQ"] = dsn;
            si.EnvironmentVariables["SHARED_TEST_GATE"] = gate ? "1" : "0";
            return Process.Start(si);
        }

        public static WorkerReport Report(Process p)
        {
            string line = p.StandardOutput.ReadLine() ?? "";
            p.StandardInput.Close();
            p.WaitForExit();
            string[] f = line.Split('\t');
            if (p.ExitCode != 0 || f.Length != 7) throw new InvalidOperationException("worker exited with " + p.ExitCode + ": " + line.Length + " characters");
            return new WorkerReport { Pid = f[0], Token = f[1], Requests = ulong.Parse(f[2]), Error = f[3], Code = f[4], Ado = f[5], Message = f[6] };
        }

        public WorkerReport Fresh(string sharing)
        {
            return Report(Start(sharing, false));
        }
    }

    private static void SharedCache(string emulator, string dsn)
    {
        Run("shared cache: cold workers", () =>
        {
            SharedCacheRun run = new SharedCacheRun(emulator, dsn, "cold");
            Control(emulator, "/control/faults", "[{\"delay_ms\": 300}]"); // the others ask while the first request runs
            List<Process> ps = new List<Process>();
            for (int i = 0; i < SharedWorkers; i++) ps.Add(run.Start("1", true));
            foreach (Process p in ps)
                if (p.StandardOutput.ReadLine() != "ready") throw new InvalidOperationException("a worker was not ready");
            foreach (Process p in ps) p.StandardInput.WriteLine("go"); // every worker is ready: all ask now
            HashSet<string> tokens = new HashSet<string>(), pids = new HashSet<string>();
            ulong sum = 0;
            List<WorkerReport> got = new List<WorkerReport>();
            foreach (Process p in ps) got.Add(SharedCacheRun.Report(p));
            foreach (WorkerReport r in got)
            {
                tokens.Add(r.Token);
                pids.Add(r.Pid);
                sum += r.Requests;
            }
            long n = run.Requests();
            Check("shared cache: " + SharedWorkers + " cold worker processes make one identity request", n == 1, n + " requests");
            Check("shared cache: every worker got the same token", tokens.Count == 1 && !tokens.Contains("") && pids.Count == SharedWorkers && sum == 1,
                tokens.Count + " tokens, " + pids.Count + " processes, " + sum + " requests by the connectors");
            PsqlLogin("shared cache: a worker's token logs in", new System.Data.Common.DbConnectionStringBuilder { ConnectionString = got[0].Ado });
            WorkerReport later = run.Fresh("1");
            Check("shared cache: a later process reads the entry (0 requests)", later.Token == got[0].Token && later.Requests == 0 && run.Requests() == 1,
                later.Requests + " requests by it, " + run.Requests() + " in all");
            // Workers started after a process fetched (a warm cache), all at once.
            ps.Clear();
            for (int i = 0; i < SharedWorkers; i++) ps.Add(run.Start("1", false));
            bool same = true;
            foreach (Process p in ps)
            {
                WorkerReport r = SharedCacheRun.Report(p);
                same &= r.Token == got[0].Token && r.Requests == 0;
            }
            Check("shared cache: " + SharedWorkers + " workers started on a warm cache make no request", same && run.Requests() == 1, run.Requests() + " requests");
            run.Done();
        });

        Run("shared cache: switched off", () =>
        {
            SharedCacheRun run = new SharedCacheRun(emulator, dsn, "off");
            WorkerReport warm = run.Fresh("1");
            bool each = warm.Requests == 1;
            foreach (string spelling in new[] { "0", "false", "no", "OFF" }) each &= run.Fresh(spelling).Requests == 1;
            Check("shared cache: PGENTRA_SHARED_CACHE=0/false/no/OFF makes each process ask for itself", each && run.Requests() == 5, run.Requests() + " requests");
            WorkerReport on = run.Fresh("1");
            Check("shared cache: on again, the entry is read", on.Token == warm.Token && on.Requests == 0 && run.Requests() == 5, run.Requests() + " requests");
            run.Done();
        });

        Run("shared cache: a shared failure", () =>
        {
            SharedCacheRun run = new SharedCacheRun(emulator, dsn, "failure");
            // Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
            Control(emulator, "/control/faults", "[{\"status\": 429, \"retry_after\": 30}]");
            WorkerReport first = run.Fresh("1");
            Check("shared cache: a 429 is an IdentityServiceException", first.Error == "IdentityServiceException" && run.Requests() == 1, first.Error + ": " + first.Message);
            WorkerReport second = run.Fresh("1");
            Check("shared cache: the next process answers from the shared failure, same type and code, no request",
                run.Requests() == 1 && second.Error == first.Error && second.Code == first.Code && second.Message.Contains("another process's request"),
                run.Requests() + " requests, " + second.Error + ": " + second.Message);
            WorkerReport off = run.Fresh("0");
            Check("shared cache: switched off, a process asks for itself", off.Requests == 1 && run.Requests() == 2, run.Requests() + " requests");
            run.Done();
        });
    }
}
