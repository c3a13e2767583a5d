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
    // A try's sink on a warm process's multiplexed connection: its lines go
    // to mux, each prefixed "ti_id\ttry_number\t"; close sends the try's
    // empty line and leaves the connection open.
    private final LogSink mux;
    private final String prefix;
    private boolean ended;

    LogSink(WritableByteChannel ch, PrintStream stderr) {
        this.ch = ch;
        this.stderr = stderr;
        this.mux = null;
        this.prefix = null;
    }

    private LogSink(LogSink mux, String prefix) {
        this.stderr = mux.stderr;
        this.mux = mux;
        this.prefix = prefix;
    }

    /**
     * The sink of try ti on this multiplexed connection (Go's
     * protocol.MuxLogLine; golden vector protocol/testdata/log_stream_mux.txt).
     */
    LogSink forTry(TaskInstance ti) {
        return new LogSink(this, muxPrefix(ti.id(), ti.tryNumber()));
    }

    static String muxPrefix(String tiId, long tryNumber) {
        return tiId + "\t" + tryNumber + "\t";
    }

    /** A sink writing to stderr only. */
    static LogSink stderr() {
        return new LogSink(null, System.err);
    }

    /** Writes one line (a newline is added). */
    void writeLine(String line) {
        if (mux != null) {
            synchronized (this) {
                if (!ended && mux.writeRaw(prefix + line)) {
                    return;
                }
            }
            stderr.print(line + "\n");
            stderr.flush();
            return;
        }
        if (!writeRaw(line)) {
            stderr.print(line + "\n");
            stderr.flush();
        }
    }

    /** Writes line and a newline on the channel; false when it cannot. */
    private synchronized boolean writeRaw(String line) {
        byte[] b = (line + "\n").getBytes(StandardCharsets.UTF_8);
        if (ch != null && !failed) {
            try {
                ByteBuffer buf = ByteBuffer.wrap(b);
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                return true;
            } catch (IOException e) {
                failed = true;
                stderr.println("taskwire sdk: logs to stderr: " + e);
            }
        }
        return false;
    }

    @Override
    public synchronized void close() {
        if (mux != null) {
            if (!ended) {
                ended = true;
                mux.writeRaw(prefix);
            }
            return;
        }
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
