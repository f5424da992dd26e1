# Sourced by the callers of the --allow-connect cases. `serve ADDRESS COUNT` starts
# tcp_server.py on COUNT ports of ADDRESS in the background (it ends with the caller), waits
# until it listens, and sets PORTS to its ports.
serve() {
  python3 "$HELPERS/tcp_server.py" "$WORK/ports" "$1" "$2" >/dev/null 2>&1 &
  served=$!
  trap 'kill $served 2>/dev/null' EXIT
  for _ in $(seq 200); do [ -s "$WORK/ports" ] && break; sleep 0.05; done
  read -r -a PORTS < "$WORK/ports"
}
