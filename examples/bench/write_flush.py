import sys
write, flush = sys.stdout.write, sys.stdout.flush
for _ in range(200_000):
    write("x\n")
    flush()
