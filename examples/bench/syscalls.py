import fcntl, os, sys
# The kernel caches a constant verdict of the filter per syscall number (Linux 5.11+): a call
# the program allows whatever its arguments costs no filter run; one with argument checks runs
# the program every time.
kind = sys.argv[1] if len(sys.argv) > 1 else "cached"
if kind == "cached":
    call = os.getppid
else:
    call = lambda: fcntl.fcntl(1, fcntl.F_GETFD)
for _ in range(500_000):
    call()
