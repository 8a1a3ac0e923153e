"""A launcher starts a child with stdin=PIPE, never writes to or closes it, and waits for the
child, which reads its stdin to the end: the launcher holds the only write end."""

import subprocess
import sys

if __name__ == "__main__":
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('reading', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    child.stdout.readline()  # the child is up and about to read
    child.wait()
