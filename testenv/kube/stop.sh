#!/usr/bin/env bash
# Stops what start.sh started (by PID; waits until each has exited).
here=$(cd "$(dirname "$0")" && pwd)
for p in apiserver etcd; do
  f="$here/run/$p.pid"; [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
true
