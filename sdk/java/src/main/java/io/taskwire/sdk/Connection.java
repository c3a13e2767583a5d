package io.taskwire.sdk;

import java.util.Collections;
import java.util.Map;

/**
 * A connection, as the worker returns it (ConnectionResult). Fields the
 * worker left out are "" (strings), 0 (port) or an empty map (extra). The
 * worker masks the password in the task's logs; {@link #toString()} leaves
 * it out.
 */
public record Connection(String connId, String connType, String host, String schema, String login, String password,
        int port, Map<String, Object> extra) {

    public Connection {
        connId = connId == null ? "" : connId;
        connType = connType == null ? "" : connType;
        host = host == null ? "" : host;
        schema = schema == null ? "" : schema;
        login = login == null ? "" : login;
        password = password == null ? "" : password;
        extra = extra == null ? Collections.emptyMap() : Collections.unmodifiableMap(extra);
    }

    @Override
    public String toString() {
        return "Connection[connId=" + connId + ", connType=" + connType + ", host=" + host + ", schema=" + schema
                + ", login=" + login + ", password=" + (password.isEmpty() ? "" : "***") + ", port=" + port
                + ", extra=" + extra + "]";
    }
}
