package io.taskwire.sdk;

import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.Map;
import java.util.concurrent.BlockingQueue;

/**
 * Requests to the worker on one connection: each is numbered (from 1),
 * written, and its answer read before the next request goes out. Calls from
 * several threads are serialized.
 */
final class Client {
    private final FrameConn conn;
    private long nextId = 1;
    private IOException broken; // why the connection is unusable
    private boolean closed;

    // In a warm runtime, a reader thread of the connection queues the
    // answers (byte[] frames, then an IOException at the end) here; null:
    // call reads the connection itself.
    private final BlockingQueue<Object> inbox;

    Client(FrameConn conn) {
        this(conn, null);
    }

    Client(FrameConn conn, BlockingQueue<Object> inbox) {
        this.conn = conn;
        this.inbox = inbox;
    }

    /** Ends the client: later calls fail (the task try is over). */
    synchronized void close() {
        closed = true;
    }

    /**
     * Sends msg and returns the worker's answer (null for an empty one). An
     * ErrorResponse becomes a TaskwireApiException; a lost connection or a
     * protocol violation a TaskwireException. A message that cannot be
     * encoded throws JsonException before anything is sent.
     */
    synchronized Map<String, Object> call(Map<String, Object> msg) {
        String type = Protocol.type(msg);
        if (closed) {
            throw new TaskwireException(type + ": the task try is over");
        }
        if (broken != null) {
            throw new TaskwireException(type + ": connection to the worker lost: " + broken.getMessage(), broken);
        }
        if (inbox != null && inbox.peek() instanceof IOException e) {
            // The worker closed its side (it cancelled the try): send nothing.
            throw lost(type, e);
        }
        long id = nextId;
        byte[] body = Protocol.encodeRequest(id, msg);
        nextId++;
        try {
            conn.writeFrame(body);
        } catch (ProtocolException e) {
            // Too large: nothing was written.
            throw new TaskwireException(type + ": " + e.getMessage(), e);
        } catch (IOException e) {
            throw lost(type, e);
        }
        byte[] resp;
        try {
            resp = read();
        } catch (IOException e) {
            throw lost(type, e);
        }
        if (resp == null) {
            throw lost(type, new EOFException("the worker closed the connection"));
        }
        Protocol.Response r;
        try {
            r = Protocol.decodeResponse(resp);
        } catch (ProtocolException e) {
            // The frame was read whole: the connection is still in step.
            throw new TaskwireException(type + ": bad response from the worker: " + e.getMessage(), e);
        }
        if (r.id() != id) {
            throw lost(type, new ProtocolException("response has id " + r.id() + ", want " + id));
        }
        if (r.error() != null) {
            throw apiError(r.error());
        }
        if (Protocol.ERROR_RESPONSE.equals(Protocol.type(r.msg()))) {
            throw apiError(r.msg());
        }
        return r.msg();
    }

    /** The next answer: from the connection, or from the reader thread's inbox. */
    private byte[] read() throws IOException {
        if (inbox == null) {
            return conn.readFrame();
        }
        Object o;
        try {
            o = inbox.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for the worker's answer");
        }
        if (o instanceof IOException e) {
            inbox.offer(e); // for the next call too
            throw e;
        }
        return (byte[]) o;
    }

    private TaskwireException lost(String type, IOException e) {
        broken = e;
        return new TaskwireException(type + ": connection to the worker lost: " + e.getMessage(), e);
    }

    private static TaskwireApiException apiError(Map<String, Object> e) {
        Object error = e.get("error");
        Object detail = e.get("detail");
        Map<String, Object> d = detail instanceof Map ? Protocol.cast(detail) : null;
        if ("too_large".equals(error)) {
            return new TaskwireTooLargeException(d);
        }
        return new TaskwireApiException(error instanceof String s ? s : String.valueOf(error), d);
    }
}
