"""Looks for a secret in the memory of a process and its descendants, from outside, as any
process of the same user (or root) could."""
import os, sys

root, secret = int(sys.argv[1]), sys.argv[2].encode()

def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found

pids, queue = [], [root]
while queue:
    pid = queue.pop()
    pids.append(pid)
    queue.extend(children(pid))

hits = []
for pid in pids:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            if secret in environ.read():
                hits.append(f"{pid} /proc/environ")
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
            for line in maps:
                fields = line.split()
                start, end = (int(value, 16) for value in fields[0].split("-"))
                if not fields[1].startswith("r") or end - start > 1 << 30:
                    continue
                try:
                    memory.seek(start)
                    if secret in memory.read(end - start):
                        hits.append(f"{pid} {fields[-1] if len(fields) > 5 else 'anonymous'}")
                except (OSError, ValueError, OverflowError):
                    pass
    except OSError as error:
        print(f"cannot scan {pid}: {error}")
print(f"scanned {len(pids)} processes")
print("\n".join(f"secret found in {hit}" for hit in hits) if hits else "secret not found")
