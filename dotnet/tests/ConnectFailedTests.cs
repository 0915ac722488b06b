// Tests of Connector.ConnectFailed and Connector.TokenRequests (the core's recovery rule over the
// C ABI; issue #17 item 3, issue #19). Part of Tests (see Tests.cs).
using System;
using PgEntra;

internal static partial class Tests
{
    // No network: secret mode never retries and makes no request; bad arguments name themselves.
    private static void ConnectFailedSecretMode()
    {
        using (Connector c = new Connector(new ConnectorOptions { ConnectionString = SecretDsn }))
        {
            Check("ConnectFailed in secret mode: no retry", !c.ConnectFailed("p", "28P01") && !c.ConnectFailed("p", null));
            Check("TokenRequests in secret mode is 0", c.TokenRequests == 0);
            Throws<PgEntraException>("ConnectFailed(null token): NullArgument naming token", ErrorKind.NullArgument, "'token'",
                () => c.ConnectFailed(null, "28P01"));
            Throws<PgEntraException>("ConnectFailed(token with NUL): InvalidArgument naming token", ErrorKind.InvalidArgument, "token",
                () => c.ConnectFailed("a\0b", "28P01"));
        }
        Connector d = new Connector(new ConnectorOptions { ConnectionString = SecretDsn });
        d.Dispose();
        try
        {
            d.ConnectFailed("p", "28P01");
            Check("ConnectFailed after Dispose throws ObjectDisposedException", false, "no exception");
        }
        catch (ObjectDisposedException)
        {
            Check("ConnectFailed after Dispose throws ObjectDisposedException", true);
        }
    }

    // Against the emulator: a refusal of the cached token (revoked) says retry, and the next token
    // is new for exactly one more request; other failures drop nothing; a role no token can log
    // in as costs at most two requests however many connects it refuses.
    private static void ConnectFailedHarness(Func<Connector> connect, string emulator, string host, string port)
    {
        using (Connector c = connect())
        {
            string t0 = c.Token();
            ulong r0 = c.TokenRequests;
            Check("TokenRequests counts the first token", r0 >= 1, r0.ToString());
            Check("ConnectFailed(3D000): no retry", !c.ConnectFailed(t0, "3D000"));
            Check("ConnectFailed(28000, password sent): no retry", !c.ConnectFailed(t0, "28000", true));
            Check("ConnectFailed(no SQLSTATE, no password sent): no retry", !c.ConnectFailed(t0, null, false));
            Check("the token is kept and no request made", c.Token() == t0 && c.TokenRequests == r0);
            Control(emulator, "/control/revoke", t0);
            Check("ConnectFailed(28P01) of the cached token: retry", c.ConnectFailed(t0, "28P01"));
            Check("a second connection refused with it: retry too", c.ConnectFailed(t0, "28P01"));
            Check("ConnectFailed makes no request", c.TokenRequests == r0);
            string t1 = c.Token();
            Check("the next token is a new one", t1 != t0);
            Check("exactly one more identity request", c.TokenRequests == r0 + 1, (c.TokenRequests - r0).ToString());
        }

        string dsn = "host=" + host + " port=" + port + " dbname=postgres sslmode=require user=pgentra_dotnet_no_such_role";
        using (Connector c = new Connector(new ConnectorOptions { ConnectionString = dsn, Timeout = TimeSpan.FromSeconds(20) }))
        {
            int retries = 0;
            for (int i = 0; i < 10; i++)
            {
                // Each connect refused (28P01, as PostgreSQL answers a token for another role),
                // retried once when ConnectFailed says so.
                if (c.ConnectFailed(c.Token(), "28P01"))
                {
                    retries++;
                    c.ConnectFailed(c.Token(), "28P01");
                }
            }
            Check("10 refusals of a wrong role: at most 2 identity requests", c.TokenRequests <= 2, c.TokenRequests.ToString());
            Check("and one reconnect in all", retries == 1, retries.ToString());
        }
    }
}
