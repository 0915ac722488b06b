package io.pgentra.spring;

import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A pgJDBC URL as pgJDBC reads it ({@code Driver.parseURL}): {@code jdbc:postgresql://hosts/db},
 * then {@code ?key=value&...} with percent-decoded values, the last one of a key winning.
 * Edits keep every other parameter byte for byte.
 */
final class JdbcUrl {
    private final String base;
    /** Raw key and raw (still encoded) value of each parameter, in order; value null: "key" alone. */
    private final List<String[]> params = new ArrayList<>();

    private JdbcUrl(String base) {
        this.base = base;
    }

    static boolean isPostgresql(String url) {
        return url != null && url.regionMatches(true, 0, "jdbc:postgresql:", 0, "jdbc:postgresql:".length());
    }

    static JdbcUrl parse(String url) {
        int q = url.indexOf('?');
        JdbcUrl u = new JdbcUrl(q < 0 ? url : url.substring(0, q));
        if (q >= 0) {
            for (String token : url.substring(q + 1).split("&", -1)) {
                if (token.isEmpty()) {
                    continue;
                }
                int eq = token.indexOf('=');
                u.params.add(eq < 0 ? new String[] {token, null} : new String[] {token.substring(0, eq), token.substring(eq + 1)});
            }
        }
        return u;
    }

    /** The decoded value pgJDBC would use, or null. */
    String get(String key) {
        String value = null;
        for (String[] p : params) {
            if (p[0].equals(key)) {
                value = p[1] == null ? "" : URLDecoder.decode(p[1], StandardCharsets.UTF_8);
            }
        }
        return value;
    }

    /** Sets every occurrence of {@code key} to {@code value}, or appends it. */
    void set(String key, String value) {
        String raw = URLEncoder.encode(value, StandardCharsets.UTF_8);
        boolean found = false;
        for (String[] p : params) {
            if (p[0].equals(key)) {
                p[1] = raw;
                found = true;
            }
        }
        if (!found) {
            params.add(new String[] {key, raw});
        }
    }

    /** The host names of the URL ({@code a,b} for {@code //a:5432,b:5433/db}), ports removed. */
    String hosts() {
        String rest = base.substring("jdbc:postgresql:".length());
        if (!rest.startsWith("//")) {
            return "localhost";
        }
        int slash = rest.indexOf('/', 2);
        String authority = slash < 0 ? rest.substring(2) : rest.substring(2, slash);
        List<String> hosts = new ArrayList<>();
        for (String hp : authority.split(",")) {
            String h;
            if (hp.startsWith("[")) {
                int end = hp.indexOf(']');
                h = end < 0 ? hp : hp.substring(1, end);
            } else {
                int colon = hp.lastIndexOf(':');
                h = colon < 0 ? hp : hp.substring(0, colon);
            }
            hosts.add(h.isEmpty() ? "localhost" : h);
        }
        return String.join(",", hosts);
    }

    @Override
    public String toString() {
        if (params.isEmpty()) {
            return base;
        }
        StringBuilder b = new StringBuilder(base).append('?');
        for (int i = 0; i < params.size(); i++) {
            String[] p = params.get(i);
            if (i > 0) {
                b.append('&');
            }
            b.append(p[0]);
            if (p[1] != null) {
                b.append('=').append(p[1]);
            }
        }
        return b.toString();
    }
}
