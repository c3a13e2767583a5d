package io.taskwire.sdk;

/**
 * Malformed JSON text, or a value {@link Json} cannot encode. For parse errors
 * {@link #offset()} is the character offset where the problem was found.
 */
public final class JsonException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final int offset;

    public JsonException(String message) {
        super(message);
        this.offset = -1;
    }

    JsonException(String message, int offset) {
        super("json: " + message + " at offset " + offset);
        this.offset = offset;
    }

    /** The character offset of a parse error, or -1 for an encoding error. */
    public int offset() {
        return offset;
    }
}
