# 2000 calls the sandbox refuses by name, each a round trip to the supervisor: the socket glibc's
# nscd client opens, which hpython's supervisor refuses with EACCES when no name is granted.
# Prints the mean time per call. Run under hpython (docs/overhead.md); bare, the calls succeed.
import socket
import time

CALLS = 2000
started = time.perf_counter()
for _ in range(CALLS):
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC).close()
    except OSError:
        pass
print(f"{(time.perf_counter() - started) / CALLS * 1e6:.1f} us per call")
