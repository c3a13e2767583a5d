"""A task module for the prefork tests: python -m pftask MODE [FILE]."""

import os
import signal
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "noop"
print(f"started pid={os.getpid()} ppid={os.getppid()} sid={os.getsid(0)} cwd={os.getcwd()} env={os.environ.get('PFTEST', '')}", flush=True)
if mode == "exit":
    print("failing", file=sys.stderr, flush=True)
    sys.exit(int(sys.argv[2]))
if mode == "raise":
    raise RuntimeError("boom from pftask")
if mode in ("block", "family"):
    if mode == "family":
        # A grandchild in a group of its own (as Airflow's supervisor makes
        # its task process), which only the session finds.
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)
            os._exit(0)
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(f"{pid}\n")
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    time.sleep(3600)
