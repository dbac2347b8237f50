#!/usr/bin/env bash
# Stops the peers started by start.sh, by the PIDs it recorded.
here=$(cd "$(dirname "$0")" && pwd)
for f in "$here"/run/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); kill "$pid" 2>/dev/null && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; rm -f "$f"
done
echo "testenv: stopped"
