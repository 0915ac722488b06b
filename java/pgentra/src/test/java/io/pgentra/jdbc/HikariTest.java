package io.pgentra.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.pgentra.Harness;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * A HikariCP pool of 4 with 8 threads for a minute (java/test.sh runs it with HikariCP 7 and 6),
 * its connections evicted every second so that new ones open all the time, while
 * the emulator's answers ask for a refresh every 4 s: no query fails, and identity requests
 * follow refreshes, not connections.
 */
class HikariTest {
    @Test
    void aPoolAcrossRefreshes() throws Exception {
        Harness.require();
        int seconds = Integer.getInteger("pgentra.test.hikariSeconds", 60);
        Properties info = new Properties();
        info.setProperty("PGHOST", Harness.host());
        info.setProperty("PGPORT", Harness.port());
        info.setProperty("PGDBNAME", "postgres");
        info.setProperty("user", "pgentra-app");
        info.setProperty("pgentra.credential", "managed-identity");
        io.pgentra.PgEntra connector = new PgEntraAuthenticationPlugin(info).connector();
        // Start from an empty cache. (invalidateIf would keep a token that another test fetched
        // right after a refusal: compare-and-invalidate is for refusals, not for resetting.)
        connector.invalidate();
        StringBuilder faults = new StringBuilder("[");
        for (int i = 0; i < 40; i++) {
            faults.append(i == 0 ? "" : ",").append("{\"refresh_in\": 4}");
        }
        Harness.faults(faults.append(']').toString());
        long requestsBefore = Harness.identityRequests();
        long connectorBefore = connector.tokenRequests();

        HikariConfig cfg = new HikariConfig();
        cfg.setJdbcUrl(Harness.url("require", "&pgentra.credential=managed-identity"));
        cfg.setUsername("pgentra-app");
        cfg.setMaximumPoolSize(4);
        cfg.setMinimumIdle(4);
        cfg.setConnectionTimeout(10_000);
        Set<Integer> backends = ConcurrentHashMap.newKeySet();
        AtomicLong queries = new AtomicLong();
        ExecutorService workers = Executors.newFixedThreadPool(8);
        try (HikariDataSource ds = new HikariDataSource(cfg)) {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            Future<?>[] fs = new Future<?>[8];
            for (int t = 0; t < 8; t++) {
                fs[t] = workers.submit(() -> {
                    while (System.nanoTime() < end) {
                        try (Connection c = ds.getConnection(); Statement s = c.createStatement();
                                ResultSet r = s.executeQuery("select pg_backend_pid(), current_user")) {
                            r.next();
                            backends.add(r.getInt(1));
                            assertEquals("pgentra-app", r.getString(2));
                            queries.incrementAndGet();
                        }
                        Thread.sleep(5);
                    }
                    return null;
                });
            }
            while (System.nanoTime() < end) {
                Thread.sleep(1000);
                ds.getHikariPoolMXBean().softEvictConnections();
            }
            for (Future<?> f : fs) {
                f.get(); // rethrows a failed query
            }
        } finally {
            workers.shutdownNow();
        }
        long identity = Harness.identityRequests() - requestsBefore;
        long refreshes = connector.tokenRequests() - connectorBefore;
        Harness.resetFaults(); // also resets the emulator's counters
        System.out.printf("hikari: %d s, %d queries, %d connections, %d identity requests, %d token requests%n",
                seconds, queries.get(), backends.size(), identity, refreshes);
        assertEquals(refreshes, identity, "every identity request is one of the connector's refreshes");
        assertTrue(refreshes >= seconds / 8, "refreshes every ~4 s: " + refreshes);
        assertTrue(refreshes <= seconds / 4 + 2, "no more than one request per refresh period: " + refreshes);
        assertTrue(backends.size() >= 3 * refreshes, "connections " + backends.size() + " vs identity requests " + identity);
    }
}
