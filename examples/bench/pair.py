"""Two commands run alternately, each spawned by path with stdout a pipe read to the end and
stderr to /dev/null; prints each one's median time and the median of the round-by-round ratios
B / A with its quartiles. For comparisons `cargo xtask bench` has no row for (two builds of a
host, a launcher against the bare interpreter). Usage:

    python3.11 examples/bench/pair.py ROUNDS -- COMMAND_A... -- COMMAND_B...

Commands are given by absolute path or relative to the working directory (no PATH lookup).
"""
import os
import statistics
import sys
import time


def run(argv):
    read_end, write_end = os.pipe()
    started = time.perf_counter_ns()
    pid = os.posix_spawn(
        argv[0],
        argv,
        {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        file_actions=[
            (os.POSIX_SPAWN_DUP2, write_end, 1),
            (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
        ],
    )
    os.close(write_end)
    while os.read(read_end, 65536):
        pass
    os.waitpid(pid, 0)
    os.close(read_end)
    return (time.perf_counter_ns() - started) / 1e6


def main():
    arguments = sys.argv[1:]
    if len(arguments) < 4 or arguments[1] != "--" or "--" not in arguments[2:]:
        sys.exit(__doc__)
    rounds = int(arguments[0])
    rest = arguments[2:]
    split = rest.index("--")
    commands = [rest[:split], rest[split + 1 :]]
    times = [[], []]
    warm_up = 3
    for round_number in range(rounds + warm_up):
        # Each round starts with the other command, so that a drift reaches both alike.
        order = (0, 1) if round_number % 2 else (1, 0)
        measured = {index: run(commands[index]) for index in order}
        if round_number >= warm_up:
            for index in (0, 1):
                times[index].append(measured[index])
    ratios = sorted(b / a for a, b in zip(*times))
    quantile = lambda share: ratios[round(share * (len(ratios) - 1))]
    print(
        "A %.3f ms  B %.3f ms  B/A median %.3f (quartiles %.3f-%.3f)"
        % (statistics.median(times[0]), statistics.median(times[1]), quantile(0.5), quantile(0.25), quantile(0.75))
    )


main()
