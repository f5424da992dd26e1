"""Counts the errors in a log and sends the count to a collector: the kind of helper a build
or a plugin runs. Under h it needs three grants: the log, the `grep` it runs, and the collector.
"""
import socket
import subprocess
import sys

log, collector = sys.argv[1], sys.argv[2]
host, port = collector.rsplit(":", 1)

try:
    with open(log) as lines:
        total = sum(1 for _ in lines)
    errors = subprocess.run(["grep", "-c", "ERROR", log], capture_output=True, text=True).stdout.strip()
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(f"{log}: {errors} errors in {total} lines\n".encode())
    print(f"sent: {errors} errors in {total} lines")
except OSError as error:
    print(f"summary failed: {error}")
    sys.exit(1)
