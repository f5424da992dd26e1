"""A local TCP server for the --allow-connect cases.

    python3 tcp_server.py PORTS_FILE [ADDRESS] [COUNT]

Listens on COUNT (default 2) ports of ADDRESS (default 0.0.0.0, every loopback address), writes
the ports to PORTS_FILE (one line, space-separated) once listening, and answers every connection
with one line naming the port it reached ("hello from port N"), then echoes each line it reads
until the other side closes. Ends when its parent (the case's caller) ends.
"""

import os
import selectors
import socket
import sys

ports_file = sys.argv[1]
address = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
count = int(sys.argv[3]) if len(sys.argv) > 3 else 2
family = socket.AF_INET6 if ":" in address else socket.AF_INET
selector = selectors.DefaultSelector()
ports = []
for _ in range(count):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, 0))
    listener.listen(16)
    ports.append(listener.getsockname()[1])
    selector.register(listener, selectors.EVENT_READ, "listener")
with open(ports_file + ".tmp", "w") as out:
    out.write(" ".join(map(str, ports)) + "\n")
os.rename(ports_file + ".tmp", ports_file)
parent = os.getppid()
while os.getppid() == parent:
    for key, _ in selector.select(timeout=0.5):
        if key.data == "listener":
            connection, _ = key.fileobj.accept()
            port = connection.getsockname()[1]
            connection.sendall(f"hello from port {port}\n".encode())
            selector.register(connection, selectors.EVENT_READ, "connection")
        else:
            data = key.fileobj.recv(4096)
            if data:
                key.fileobj.sendall(data)
            else:
                selector.unregister(key.fileobj)
                key.fileobj.close()
