import java.lang.management.ManagementFactory;
import java.lang.reflect.Constructor;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Arrays;
import java.util.Properties;
import org.postgresql.plugin.AuthenticationPlugin;
import org.postgresql.plugin.AuthenticationRequestType;

/**
 * One side of bench/java/run.sh, in a fresh JVM: the first connection through a pgJDBC
 * authentication plugin (time since JVM start, classes loaded, heap), then the plugin's cost
 * per new connection with a cached token (pgJDBC builds a plugin object and asks it for the
 * password on every connection; that is what is timed).
 *
 * Usage: java -cp <classpath> Bench.java <label> <plugin class> <jdbc url> <user>
 */
public class Bench {
    public static void main(String[] args) throws Exception {
        String label = args[0], pluginClass = args[1], url = args[2], user = args[3];
        Properties p = new Properties();
        p.setProperty("user", user);
        String full = url + "&authenticationPluginClassName=" + pluginClass;
        try (Connection c = DriverManager.getConnection(full, p); Statement s = c.createStatement();
                ResultSet r = s.executeQuery("select current_user")) {
            r.next();
            if (!user.equals(r.getString(1))) {
                throw new IllegalStateException("logged in as " + r.getString(1));
            }
        }
        long firstMs = ManagementFactory.getRuntimeMXBean().getUptime();
        int classes = ManagementFactory.getClassLoadingMXBean().getLoadedClassCount();
        System.gc();
        long heapKb = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() / 1024;

        // The plugin as pgJDBC drives it: a new object per connection, then getPassword.
        Properties info = org.postgresql.Driver.parseURL(full, p);
        Constructor<?> ctor = Class.forName(pluginClass).getConstructor(Properties.class);
        int batch = 2000, rounds = 15;
        double[] perCall = new double[rounds];
        for (int w = 0; w < 3; w++) {
            for (int i = 0; i < batch; i++) {
                ((AuthenticationPlugin) ctor.newInstance(info)).getPassword(AuthenticationRequestType.CLEARTEXT_PASSWORD);
            }
        }
        for (int round = 0; round < rounds; round++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < batch; i++) {
                char[] pw = ((AuthenticationPlugin) ctor.newInstance(info)).getPassword(AuthenticationRequestType.CLEARTEXT_PASSWORD);
                if (pw.length < 100) {
                    throw new IllegalStateException("short token");
                }
            }
            perCall[round] = (System.nanoTime() - t0) / (double) batch;
        }
        Arrays.sort(perCall);
        System.out.printf("%s first_connection_ms=%d classes=%d heap_kb=%d plugin_ns_median=%.0f plugin_ns_min=%.0f%n",
                label, firstMs, classes, heapKb, perCall[rounds / 2], perCall[0]);
    }
}
