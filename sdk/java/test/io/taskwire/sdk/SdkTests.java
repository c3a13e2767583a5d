package io.taskwire.sdk;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The Java SDK's tests, without JUnit: every static no-argument method whose
 * name starts with "test" in the test classes runs, each with a time limit.
 * It prints one line per failure and "N passed, M failed", and exits 1 when
 * a test failed.
 *
 * <pre>
 * java -cp DIR io.taskwire.sdk.SdkTests [--golden DIR] [--vectors DIR] [--run SUBSTRING] [-v]
 * </pre>
 *
 * --golden is protocol/testdata/json (found from the working directory when
 * not given); --vectors a directory of extra vectors written by Go (see
 * java_test.go), whose tests are skipped when it is not given.
 */
public final class SdkTests {
    static Path goldenDir;
    static Path vectorsDir;
    static final long TIMEOUT_SECONDS = 20;

    private static final Class<?>[] CLASSES = {JsonTests.class, ProtocolTests.class, RuntimeTests.class};

    public static void main(String[] args) throws Exception {
        String filter = null;
        boolean verbose = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--golden": goldenDir = Path.of(args[++i]); break;
                case "--vectors": vectorsDir = Path.of(args[++i]); break;
                case "--run": filter = args[++i]; break;
                case "-v": verbose = true; break;
                default:
                    System.err.println("unknown argument " + args[i]);
                    System.exit(2);
            }
        }
        if (goldenDir == null) {
            for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
                Path g = p.resolve("protocol/testdata/json");
                if (Files.isDirectory(g)) {
                    goldenDir = g;
                    break;
                }
            }
        }
        List<Method> tests = new ArrayList<>();
        for (Class<?> c : CLASSES) {
            Method[] ms = c.getDeclaredMethods();
            Arrays.sort(ms, Comparator.comparing(Method::getName));
            for (Method m : ms) {
                if (m.getName().startsWith("test") && m.getParameterCount() == 0 && Modifier.isStatic(m.getModifiers())
                        && (filter == null || (c.getSimpleName() + "." + m.getName()).contains(filter))) {
                    tests.add(m);
                }
            }
        }
        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        int passed = 0, failed = 0;
        long start = System.nanoTime();
        for (Method m : tests) {
            String name = m.getDeclaringClass().getSimpleName() + "." + m.getName();
            long t0 = System.nanoTime();
            Future<?> f = pool.submit(() -> {
                m.setAccessible(true);
                m.invoke(null);
                return null;
            });
            Throwable err = null;
            try {
                f.get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                f.cancel(true);
                err = new AssertionError("timed out after " + TIMEOUT_SECONDS + "s");
            } catch (java.util.concurrent.ExecutionException e) {
                err = e.getCause();
                if (err instanceof InvocationTargetException ite) {
                    err = ite.getCause();
                }
            }
            long ms = (System.nanoTime() - t0) / 1_000_000;
            if (err == null) {
                passed++;
                if (verbose) {
                    System.out.println("ok   " + name + " (" + ms + "ms)");
                }
            } else {
                failed++;
                System.out.println("FAIL " + name + " (" + ms + "ms): " + err.getMessage());
                if (!(err instanceof AssertionError) || err.getCause() != null) {
                    err.printStackTrace(System.out);
                }
            }
        }
        System.out.println(passed + " passed, " + failed + " failed (" + (System.nanoTime() - start) / 1_000_000 + "ms)");
        System.out.flush();
        System.exit(failed > 0 || passed == 0 ? 1 : 0);
    }
}
