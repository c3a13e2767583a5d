package io.taskwire.sdk;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where the tests find their vectors. The pom passes both as system
 * properties; run elsewhere (an IDE), they are found from the working
 * directory. A missing directory fails the test that needs it: the vectors
 * are what keeps the SDKs byte-compatible, so they are never skipped.
 */
final class TestData {
    private TestData() {}

    /** protocol/testdata/json: the golden frames the Go protocol package wrote. */
    static Path golden() {
        return dir("taskwire.golden", "protocol/testdata/json");
    }

    /**
     * src/test/resources/govectors: frames, JSON values and durations written
     * by Go's encoders (sdk/java/vectors_test.go writes them and checks they
     * are current).
     */
    static Path goVectors() {
        return dir("taskwire.vectors", "sdk/java/src/test/resources/govectors");
    }

    /** protocol/testdata: the Go protocol package's golden files. */
    static Path protocolTestdata() {
        return dir("taskwire.testdata", "protocol/testdata");
    }

    private static Path dir(String property, String fromRoot) {
        String p = System.getProperty(property);
        if (p != null && !p.isEmpty()) {
            Path d = Path.of(p);
            if (!Files.isDirectory(d)) {
                throw new AssertionError("-D" + property + "=" + p + " is not a directory");
            }
            return d;
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path g = d.resolve(fromRoot);
            if (Files.isDirectory(g)) {
                return g;
            }
        }
        throw new AssertionError(fromRoot + " not found above " + Path.of("").toAbsolutePath()
                + ": run the tests with mvn -f sdk/java test, or pass -D" + property + "=DIR");
    }
}
