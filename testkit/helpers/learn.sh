# Sourced by the callers of the --learn cases. `learn SCRIPT ARGS...` runs the script under
# `$HOST --learn`, prints the options the report lists (the work directory as WORK, the server's
# port as PORT), and sets LEARNED to the command line the report ends with.
learn() {
  $HOST --learn "$@" 2> "$WORK/learned"
  echo "-- learned:"
  sed -n "s/^[a-z]*:   //p" "$WORK/learned" | sed "s|$WORK|WORK|g; s|:${PORTS[0]}\$|:PORT|"
  LEARNED=$(sed -n 's/^[a-z]*: learned: to grant it, run: //p' "$WORK/learned")
  echo "-- with them:"
}
