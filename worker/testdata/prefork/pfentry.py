"""A preloaded task module with prefork_main (python -m pfentry CODE): a
prefork child calls prefork_main instead of running this module again as
__main__. It prints what it sees and exits with CODE."""

import os
import sys


def prefork_main():
    print(
        f"entry argv={' '.join(sys.argv[1:])} env={os.environ.get('PFTEST', '')} "
        f"zygote_only={'PFZYGOTEONLY' in os.environ} pid={os.getpid()} ppid={os.getppid()}",
        flush=True,
    )
    return int(sys.argv[1]) if len(sys.argv) > 1 else None


if __name__ == "__main__":
    print("ran as __main__", flush=True)
    sys.exit(prefork_main())
