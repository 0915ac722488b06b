// Reads JDBC URLs (one per line, from stdin) and prints what pgJDBC's own parser reads from
// each: Driver.parseURL(url, null), as sorted key<TAB>value lines, or REJECTED, then a blank line.
// Values are escaped (\\, \t, \n) so that any text survives the trip.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.TreeSet;

public class ParseUrl {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            Properties p = org.postgresql.Driver.parseURL(line, null);
            if (p == null) {
                out.append("REJECTED\n\n");
                continue;
            }
            for (String k : new TreeSet<>(p.stringPropertyNames())) {
                out.append(esc(k)).append('\t').append(esc(p.getProperty(k))).append('\n');
            }
            out.append('\n');
        }
        System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
        System.out.flush();
    }

    private static String esc(String s) {
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n");
    }
}
