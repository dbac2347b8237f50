#!/usr/bin/env bash
# Stops what start.sh started.
here=$(cd "$(dirname "$0")" && pwd)
for p in apiserver etcd; do
  f="$here/run/$p.pid"; [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"
done
true
