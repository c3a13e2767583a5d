package io.taskwire.sdk;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * Frames of the task protocol on a byte stream: a 4-byte big-endian length,
 * then that many bytes of body. A frame longer than the limit is refused
 * before anything is allocated for it (and leaves the stream out of step).
 * Reads and writes are each serialized; one reader and several writers may
 * use a FrameConn at once.
 */
public final class FrameConn implements Closeable {
    /** The default largest body, as the Go protocol package's MaxFrameSizeDefault. */
    public static final int MAX_FRAME_SIZE_DEFAULT = 4 << 20;

    private final ReadableByteChannel in;
    private final WritableByteChannel out;
    private final int maxFrame;
    private final Object readLock = new Object();
    private final Object writeLock = new Object();

    /** A FrameConn on a channel, with the default limit. */
    public FrameConn(ByteChannel ch) {
        this(ch, ch, 0);
    }

    /** A FrameConn reading in and writing out; maxFrame <= 0 means the default. */
    public FrameConn(ReadableByteChannel in, WritableByteChannel out, int maxFrame) {
        this.in = in;
        this.out = out;
        this.maxFrame = maxFrame <= 0 ? MAX_FRAME_SIZE_DEFAULT : maxFrame;
    }

    /** The largest body read or written. */
    public int maxFrame() {
        return maxFrame;
    }

    /**
     * Reads one frame's body; null when the stream ends cleanly before a
     * frame. It throws EOFException when the stream ends inside one and
     * ProtocolException when its length passes the limit.
     */
    public byte[] readFrame() throws IOException {
        synchronized (readLock) {
            ByteBuffer hdr = ByteBuffer.allocate(4);
            if (!fill(hdr, true)) {
                return null;
            }
            long n = hdr.getInt(0) & 0xffffffffL;
            if (n > maxFrame) {
                throw new ProtocolException("frame too large: " + n + " bytes, the limit is " + maxFrame);
            }
            ByteBuffer body = ByteBuffer.allocate((int) n);
            fill(body, false);
            return body.array();
        }
    }

    /** Fills b; false when the stream ended before the first byte and eofOK. */
    private boolean fill(ByteBuffer b, boolean eofOK) throws IOException {
        while (b.hasRemaining()) {
            if (in.read(b) < 0) {
                if (eofOK && b.position() == 0) {
                    return false;
                }
                throw new EOFException("connection closed inside a frame");
            }
        }
        return true;
    }

    /** Writes body as one frame. */
    public void writeFrame(byte[] body) throws IOException {
        if (body.length > maxFrame) {
            throw new ProtocolException("frame too large: " + body.length + " bytes, the limit is " + maxFrame);
        }
        ByteBuffer b = ByteBuffer.allocate(4 + body.length);
        b.putInt(body.length).put(body).flip();
        synchronized (writeLock) {
            while (b.hasRemaining()) {
                out.write(b);
            }
        }
    }

    @Override
    public void close() throws IOException {
        try {
            in.close();
        } finally {
            if (out != in) {
                out.close();
            }
        }
    }
}
