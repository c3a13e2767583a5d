package io.taskwire.sdk;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;

/**
 * Where log lines go: the worker's logs socket, else (when it is not
 * reachable, or once it fails) standard error, which the worker captures too.
 */
final class LogSink implements AutoCloseable {
    private final PrintStream stderr;
    private WritableByteChannel ch; // null: stderr
    private boolean failed;

    LogSink(WritableByteChannel ch, PrintStream stderr) {
        this.ch = ch;
        this.stderr = stderr;
    }

    /** A sink writing to stderr only. */
    static LogSink stderr() {
        return new LogSink(null, System.err);
    }

    /** Writes one line (a newline is added). */
    synchronized void writeLine(String line) {
        byte[] b = (line + "\n").getBytes(StandardCharsets.UTF_8);
        if (ch != null && !failed) {
            try {
                ByteBuffer buf = ByteBuffer.wrap(b);
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                return;
            } catch (IOException e) {
                failed = true;
                stderr.println("taskwire sdk: logs to stderr: " + e);
            }
        }
        stderr.print(line + "\n");
        stderr.flush();
    }

    @Override
    public synchronized void close() {
        if (ch != null) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // nothing left to tell
            }
            ch = null;
        }
        stderr.flush();
    }
}
