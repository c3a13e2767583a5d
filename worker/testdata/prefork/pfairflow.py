"""A stand-in for the airflow runtime's shim in a prefork child (the worker
tests have no Airflow): it announces the comm and logs addresses in
$PFAIRFLOW_DIR/addr, waits for $PFAIRFLOW_DIR/go (the test connects its
intruders first), then does what taskwire.airflow_runtime does on the
wire: the secret first on both connections, then it reads the
StartupDetails frame, logs a line and exits 0 (a runtime that exits 0
without a final message succeeds)."""

import json
import os
import socket
import struct
import time

from taskwire import protocol


def dial(addr):
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr)
        return s
    host, _, port = addr.rpartition(":")
    return socket.create_connection((host, int(port)))


def main():
    d = os.environ["PFAIRFLOW_DIR"]
    comm_addr, logs_addr = os.environ["TASKWIRE_COMM_ADDR"], os.environ["TASKWIRE_LOGS_ADDR"]
    with open(os.path.join(d, "addr.tmp"), "w") as f:
        f.write("%s %s" % (comm_addr, logs_addr))
    os.rename(os.path.join(d, "addr.tmp"), os.path.join(d, "addr"))
    while not os.path.exists(os.path.join(d, "go")):
        time.sleep(0.02)
    secret = protocol.comm_secret()
    comm = dial(comm_addr)
    comm.sendall(protocol.auth_frame(secret))
    logs = dial(logs_addr)
    logs.sendall(protocol.log_header(secret))
    f = comm.makefile("rb")
    (n,) = struct.unpack(">I", f.read(4))
    body = f.read(n)
    logs.sendall(json.dumps({"event": "startup of %d bytes, forked ppid=%d" % (len(body), os.getppid()),
                             "level": "info", "logger": "pfairflow"}).encode() + b"\n")
    logs.close()
    comm.close()


main()
