// The root README's "One vocabulary" table (issue #19): every name in the .NET column exists on
// the real API with the kind of member the cell gives (`Name(args)`: a public method, `.Name`: a
// public property), checked by reflection and called against the harness.
using System;
using System.Collections.Generic;
using System.Data.Common;
using System.IO;
using System.Reflection;
using System.Text.RegularExpressions;
using PgEntra;

internal static partial class Tests
{
    // true skips the "identity request count" row (for a wrapper without the property).
    private static readonly bool SkipRequestCount = false;

    // concept -> the cell of the named column of the table under "### One vocabulary".
    private static Dictionary<string, string> VocabularyColumn(string readme, string name)
    {
        string[] lines = File.ReadAllLines(readme);
        int start = Array.IndexOf(lines, "### One vocabulary");
        if (start < 0) throw new InvalidDataException("README.md has no \"### One vocabulary\" section");
        var rows = new List<string[]>();
        for (int i = start + 1; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith("|"))
            {
                if (rows.Count > 0) break;
                continue;
            }
            string[] cells = lines[i].Trim().Trim('|').Split('|');
            for (int j = 0; j < cells.Length; j++) cells[j] = cells[j].Trim();
            rows.Add(cells);
        }
        int col = Array.IndexOf(rows[0], name);
        if (col <= 0) throw new InvalidDataException("no " + name + " column");
        var outp = new Dictionary<string, string>();
        for (int i = 2; i < rows.Count; i++) outp[rows[i][0]] = rows[i][col];
        return outp;
    }

    // The code spans of one cell: Take checks that one is named, Done that none was left unchecked.
    private sealed class Cell
    {
        public readonly string Concept, Text;
        public readonly List<string> Left = new List<string>();

        public Cell(Dictionary<string, string> column, string concept)
        {
            Concept = concept;
            if (!column.TryGetValue(concept, out Text)) throw new InvalidDataException("no row \"" + concept + "\"");
            foreach (Match m in Regex.Matches(Text, "`([^`]+)`")) Left.Add(m.Groups[1].Value);
        }

        public string Take(string span)
        {
            if (!Left.Remove(span))
                throw new InvalidDataException("\"" + Concept + "\": the .NET cell \"" + Text + "\" does not name `" + span + "`");
            return span;
        }

        public void Done()
        {
            Check("\"" + Concept + "\": every name in the .NET cell is checked", Left.Count == 0, string.Join(", ", Left.ToArray()));
        }
    }

    // `Name(args)`: a public instance method of t callable with that many arguments; `.Name`: a
    // public readable property. Returns the member; throws when the span shows neither.
    private static MemberInfo Member(Type t, string span)
    {
        Match m = Regex.Match(span, @"^(\.)?([A-Z]\w*)(\((\w*)\))?$");
        if (!m.Success || m.Groups[1].Success == m.Groups[3].Success)
            throw new InvalidDataException("`" + span + "` is neither `Name(args)` nor `.Name`");
        string name = m.Groups[2].Value;
        if (m.Groups[3].Success)
        {
            int shown = m.Groups[4].Value.Length == 0 ? 0 : 1;
            foreach (MethodInfo mi in t.GetMethods(BindingFlags.Public | BindingFlags.Instance))
            {
                if (mi.Name != name) continue;
                int total = mi.GetParameters().Length, required = 0;
                foreach (ParameterInfo p in mi.GetParameters()) if (!p.IsOptional) required++;
                if (required <= shown && shown <= total) return mi;
            }
            throw new MissingMethodException(t.Name, name + " with " + shown + " argument(s)");
        }
        PropertyInfo pi = t.GetProperty(name, BindingFlags.Public | BindingFlags.Instance);
        if (pi == null || !pi.CanRead) throw new MissingMemberException(t.Name, name + " (a property)");
        return pi;
    }

    private static void Vocabulary(string readme)
    {
        string host = Environment.GetEnvironmentVariable("PGENTRA_PG_HOST");
        string port = Environment.GetEnvironmentVariable("PGENTRA_PG_PORT");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
        {
            // Harness() already failed the run when the harness is required.
            Skip("vocabulary", "harness not running");
            return;
        }
        Dictionary<string, string> t = VocabularyColumn(readme, ".NET");
        string dsn = "host=" + host + " port=" + port + " dbname=postgres sslmode=require";
        using (var c = new Connector(new ConnectorOptions { ConnectionString = dsn, Timeout = TimeSpan.FromSeconds(20) }))
        {
            var x = new Cell(t, "token");
            var token = (string)((MethodInfo)Member(typeof(Connector), x.Take("Token()"))).Invoke(c, null);
            Check("vocabulary: Token() is a method", token != null && token.Split('.').Length == 3);
            var tokenAsync = (MethodInfo)Member(typeof(Connector), x.Take("TokenAsync()"));
            Check("vocabulary: TokenAsync() is a method", tokenAsync.ReturnType == typeof(System.Threading.Tasks.Task<string>));
            x.Done();

            x = new Cell(t, "connection string");
            var cs = (MethodInfo)Member(typeof(Connector), x.Take("ConnectionString(format)"));
            Check("vocabulary: ConnectionString(format) takes a Format", cs.GetParameters()[0].ParameterType == typeof(Format));
            x.Done();

            x = new Cell(t, "database name");
            x.Take("Database");
            Check("vocabulary: the cell names Npgsql", x.Text.Contains("Npgsql's name"), x.Text);
            var b = new DbConnectionStringBuilder { ConnectionString = c.ConnectionString(Format.Ado) };
            Check("vocabulary: Database in the ADO.NET string", b.ContainsKey("Database") && (string)b["Database"] == "postgres");
            x.Done();

            x = new Cell(t, "invalidate if still cached");
            var inv = (MethodInfo)Member(typeof(Connector), x.Take("InvalidateIf(rejected)"));
            Check("vocabulary: InvalidateIf(rejected) is a method that drops only the given token",
                !(bool)inv.Invoke(c, new object[] { "not the cached token" }) && (bool)inv.Invoke(c, new object[] { token }));
            x.Done();

            PgEntraException err = null;
            try { new Connector(new ConnectorOptions { ConnectionString = "host=h port=70000" }).Dispose(); }
            catch (PgEntraException e) { err = e; }
            Check("vocabulary: a bad port throws", err != null);

            x = new Cell(t, "error kind");
            var kind = (PropertyInfo)Member(typeof(PgEntraException), x.Take(".Kind"));
            Check("vocabulary: .Kind is a property", (ErrorKind)kind.GetValue(err, null) == ErrorKind.Configuration);
            x.Done();

            x = new Cell(t, "service code (`AADSTS…`)");
            var sc = (PropertyInfo)Member(typeof(PgEntraException), x.Take(".ServiceCode"));
            Check("vocabulary: .ServiceCode is a property", sc.PropertyType == typeof(string) && sc.GetValue(err, null) == null);
            x.Done();

            x = new Cell(t, "identity request count");
            if (SkipRequestCount)
            {
                Skip("vocabulary: identity request count", "until TokenRequests lands in .NET (see SkipRequestCount)");
            }
            else
            {
                if (x.Left.Count != 1) throw new InvalidDataException("identity request count: one name expected in " + x.Text);
                var n = Member(typeof(Connector), x.Take(x.Left[0])) as PropertyInfo;
                Check("vocabulary: the request count is a property", n != null && Convert.ToInt64(n.GetValue(c, null)) == 1);
                x.Done();
            }

            x = new Cell(t, "timeout (one token acquisition)");
            x.Take("TimeSpan");
            PropertyInfo timeout = typeof(ConnectorOptions).GetProperty("Timeout");
            Check("vocabulary: ConnectorOptions.Timeout is a TimeSpan",
                timeout != null && Nullable.GetUnderlyingType(timeout.PropertyType) == typeof(TimeSpan));
            x.Done();
        }
    }
}
