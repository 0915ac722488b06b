package io.pgentra;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;

/**
 * A fresh JVM for SharedCacheTest, sharing set by its environment: its own connector, a token
 * (after "go" on stdin when SHARED_TEST_GATE=1; with SHARED_TEST_LOGIN=1 it logs in with it),
 * and one tab-separated line: pid, token, requests, user, error kind, service code, message.
 * Then the connector is closed, or with SHARED_TEST_END=gc dropped and garbage-collected.
 */
public final class SharedCacheWorker {
    private SharedCacheWorker() {}

    public static void main(String[] args) throws Exception {
        PgEntra pg = PgEntra.builder().connectionString(System.getenv("SHARED_TEST_LIBPQ"))
                .credential("managed-identity").timeout(Duration.ofSeconds(10)).build();
        if ("1".equals(System.getenv("SHARED_TEST_GATE"))) {
            System.out.println("ready");
            System.out.flush();
            String go = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
            if (!"go".equals(go)) {
                System.exit(1);
            }
        }
        String token = "", user = "", kind = "", code = "", message = "";
        try {
            // A digest, not the token: a failed assertion prints the report.
            byte[] sha = MessageDigest.getInstance("SHA-256").digest(new String(pg.token()).getBytes(StandardCharsets.UTF_8));
            token = HexFormat.of().formatHex(sha, 0, 8);
            if ("1".equals(System.getenv("SHARED_TEST_LOGIN"))) {
                try (Connection c = DriverManager.getConnection(pg.jdbcUrl());
                        Statement s = c.createStatement();
                        ResultSet r = s.executeQuery("select current_user")) {
                    r.next();
                    user = r.getString(1);
                }
            }
        } catch (PgEntraException e) {
            kind = e.kind().name();
            code = e.serviceCode() == null ? "" : e.serviceCode();
            message = e.getMessage().replace('\t', ' ').replace('\n', ' ');
        }
        String report = String.join("\t", String.valueOf(ProcessHandle.current().pid()), token,
                String.valueOf(pg.tokenRequests()), user, kind, code, message);
        if (!"gc".equals(System.getenv("SHARED_TEST_END"))) {
            pg.close();
        } else {
            pg = null;
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (PgEntra.FREED.get() == 0 && System.nanoTime() < deadline) {
                System.gc();
                Thread.sleep(20);
            }
            if (PgEntra.FREED.get() == 0) {
                System.exit(2);
            }
        }
        System.out.println(report); // after the close (or release): the test reads the folder then
    }
}
