package io.pgentra;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The root README's "One vocabulary" table (issue #19): every name in the Java column is a public
 * method of the real API (Java makes every member a method: {@code name()} and {@code .name()}
 * alike), checked by reflection, and called against the harness.
 */
class VocabularyTest {
    /** concept -> the Java column's cell, read from the table under "### One vocabulary". */
    static Map<String, String> column(String name) throws Exception {
        List<String> lines = Files.readAllLines(Paths.get(System.getProperty("user.dir")).resolve("../../README.md").normalize());
        int start = lines.indexOf("### One vocabulary");
        assertTrue(start >= 0, "README.md has no \"### One vocabulary\" section");
        List<String[]> rows = new ArrayList<>();
        for (String l : lines.subList(start + 1, lines.size())) {
            if (l.startsWith("|")) {
                String[] cells = l.trim().replaceAll("^\\||\\|$", "").split("\\|", -1);
                for (int i = 0; i < cells.length; i++) cells[i] = cells[i].trim();
                rows.add(cells);
            } else if (!rows.isEmpty()) {
                break;
            }
        }
        int col = Arrays.asList(rows.get(0)).indexOf(name);
        assertTrue(col > 0, "no " + name + " column");
        Map<String, String> out = new LinkedHashMap<>();
        for (String[] r : rows.subList(2, rows.size())) out.put(r[0], r[col]);
        return out;
    }

    /** The code spans of one cell: take() checks one is named, done() that none was left unchecked. */
    static final class Cell {
        final String concept;
        final String text;
        final List<String> left = new ArrayList<>();

        Cell(Map<String, String> column, String concept) {
            this.concept = concept;
            this.text = column.get(concept);
            assertNotNull(text, "no row \"" + concept + "\"");
            Matcher m = Pattern.compile("`([^`]+)`").matcher(text);
            while (m.find()) left.add(m.group(1));
        }

        String take(String span) {
            assertTrue(left.remove(span), "\"" + concept + "\": the Java cell \"" + text + "\" does not name `" + span + "`");
            return span;
        }

        void done() {
            assertEquals(List.of(), left, "\"" + concept + "\": the Java cell names spans this test does not check");
        }
    }

    /** {@code name()}, {@code .name()} or {@code name(arg)}: a public instance method of cls with that many parameters. */
    static Method method(Class<?> cls, String span) {
        Matcher m = Pattern.compile("^\\.?(\\w+)\\((\\w*)\\)$").matcher(span);
        assertTrue(m.matches(), "`" + span + "` is not a method");
        int arity = m.group(2).isEmpty() ? 0 : 1;
        return Arrays.stream(cls.getMethods())
                .filter(x -> x.getName().equals(m.group(1)) && x.getParameterCount() == arity && !Modifier.isStatic(x.getModifiers()))
                .findFirst()
                .orElseThrow(() -> new AssertionError(cls.getName() + "." + m.group(1) + " with " + arity + " parameter(s) is not a public method"));
    }

    @Test
    void theJavaColumnNamesMembersThatExist() throws Exception {
        Harness.require();
        Map<String, String> t = column("Java");
        String libpq = "host=" + Harness.host() + " port=" + Harness.port() + " dbname=postgres sslmode=require";
        try (PgEntra pg = PgEntra.builder().connectionString(libpq).credential("managed-identity").build()) {
            Cell x = new Cell(t, "token");
            Method token = method(PgEntra.class, x.take("token()"));
            x.take("char[]");
            assertEquals(char[].class, token.getReturnType());
            char[] tok = (char[]) token.invoke(pg);
            assertTrue(tok.length > 0);
            x.done();

            x = new Cell(t, "connection string");
            Method cs = method(PgEntra.class, x.take("connectionString(format)"));
            assertEquals(Format.class, cs.getParameterTypes()[0]);
            assertTrue(((String) cs.invoke(pg, Format.URI)).startsWith("postgresql://"));
            x.done();

            x = new Cell(t, "database name");
            String span = x.take("params().get(\"dbname\")");
            assertTrue(Map.class.isAssignableFrom(method(PgEntra.class, span.substring(0, span.indexOf(')') + 1)).getReturnType()));
            assertEquals("postgres", pg.params().get("dbname"));
            x.done();

            x = new Cell(t, "invalidate if still cached");
            Method inv = method(PgEntra.class, x.take("invalidateIf(rejected)"));
            assertEquals(char[].class, inv.getParameterTypes()[0]);
            assertFalse((Boolean) inv.invoke(pg, (Object) "not the cached token".toCharArray()));
            assertTrue((Boolean) inv.invoke(pg, (Object) pg.token()));
            x.done();

            PgEntraException err = assertThrows(PgEntraException.class,
                    () -> PgEntra.builder().connectionString("host=h port=70000").build().close());

            x = new Cell(t, "error kind");
            assertEquals(PgEntraException.Kind.CONFIG, method(PgEntraException.class, x.take(".kind()")).invoke(err));
            x.done();

            x = new Cell(t, "service code (`AADSTS…`)");
            assertNull(method(PgEntraException.class, x.take(".serviceCode()")).invoke(err));
            x.done();

            x = new Cell(t, "identity request count");
            assertEquals(1L, method(PgEntra.class, x.take("tokenRequests()")).invoke(pg));
            x.done();

            x = new Cell(t, "timeout (one token acquisition)");
            Method timeout = method(PgEntra.Builder.class, "timeout(" + x.take("Duration") + ")");
            assertArrayEquals(new Class<?>[] {Duration.class}, timeout.getParameterTypes());
            PgEntra.builder().connectionString(libpq).timeout(Duration.ofMillis(2500)).build().close();
            x.done();
        }
    }
}
