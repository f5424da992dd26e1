#!/bin/sh
# The --learn demo: a script that fails under hpython, the report of what it was refused, and
# the same script run again with the options the report printed.
#
#     sh examples/learn/demo.sh        (from the repository; builds hpython when needed)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
# HPYTHON: the binary to run (the test that runs this demo gives the one it built).
hpython=${HPYTHON:-$root/target/release/hpython}
[ -x "$hpython" ] || cargo build --release -q -p hpython --manifest-path "$root/Cargo.toml"
work=$(mktemp -d)
trap 'kill "$collector" 2>/dev/null; rm -rf "$work"' EXIT
cp "$root/examples/learn/summary.py" "$work/"
printf 'INFO start\nERROR disk full\nINFO retry\nERROR disk full\n' > "$work/app.log"

# A collector on a free port of this machine, which prints what it receives.
python3 -c '
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    with connection:
        print("collector received:", connection.makefile().readline().strip(), file=sys.stderr, flush=True)
' > "$work/port" &
collector=$!
while [ ! -s "$work/port" ]; do sleep 0.05; done
port=$(cat "$work/port")
cd "$work"

step() { printf '\n$ %s\n' "$*"; }
step hpython summary.py app.log "localhost:$port"
"$hpython" summary.py app.log "localhost:$port" || true

# Learn until nothing more is refused: a script that stops at its first failure shows one
# need per round; each round's command line keeps the options of the rounds before.
command="$hpython summary.py app.log localhost:$port"
for round in 1 2 3 4 5; do
  step "$(echo "$command" | sed "s|^$hpython|hpython --learn|")"
  eval "$hpython --learn ${command#"$hpython "}" 2> learned || true
  cat learned
  learned=$(sed -n 's/^hpython: learned: to grant it, run: //p' learned)
  [ -n "$learned" ] || break
  command=$learned
done

step "$(echo "$command" | sed "s|^$hpython|hpython|")"
eval "$command"
sleep 0.2
