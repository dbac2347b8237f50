#!/usr/bin/env bash
# Tears down what node-start.sh started, and the API server (stop.sh): the kubelet first (no
# restarts), then every pod's processes (the containerd tasks and their shims, found through
# our containerd socket only), containerd, dockerd, the pods' mounts and network namespaces,
# the bridges, the kubelet's cgroups, and the node's state directory. Leaves nothing running.
# Idempotent.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd); run="$here/run"
state=/var/lib/kbo-node; rt=/run/kbo-node
stop_pid() { # name [signal]: kill the PID in run/<name>.pid and wait up to 15 s for it
  local f="$run/$1.pid" p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "-${2:-TERM}" "$p" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  fi
  rm -f "$f"
}
# a node started from another work tree is not ours to tear down
if [ ! -f "$run/containerd.pid" ] && [ -S "$rt/containerd.sock" ] \
   && ctr --address "$rt/containerd.sock" version >/dev/null 2>&1; then
  echo "kube-node: the running node was not started from this work tree ($here): left alone" >&2
  "$here/stop.sh"
  exit 0
fi
stop_pid kubelet
stop_pid scheduler
stop_pid controller-manager
# Pods' processes: every task of our containerd, then the shims that serve our socket (their
# command line names it: matched exactly by /proc, not by a process name).
if [ -S "$rt/containerd.sock" ]; then
  for ns in k8s.io moby; do
    for id in $(ctr --address "$rt/containerd.sock" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$rt/containerd.sock" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1
    done
  done
  sleep 1
fi
stop_pid dockerd
stop_pid containerd
for d in /proc/[0-9]*; do
  tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q -- "-address $rt/containerd.sock " && kill -KILL "${d#/proc/}" 2>/dev/null
done
sleep 0.5
# mounts under the node's directories (deepest first): pod volumes, container rootfs, netns
for m in $(awk -v a="$state" -v b="$rt" '$2 ~ "^"a"/" || $2 ~ "^"b"/" || $2 ~ "^/run/netns/cni-" {print $2}' /proc/mounts | sort -r); do
  umount -l "$m" 2>/dev/null
done
for n in /run/netns/cni-*; do [ -e "$n" ] && rm -f "$n"; done
for l in kbo-cni0 kbo0; do ip link show "$l" >/dev/null 2>&1 && ip link del "$l"; done
# the kubelet's pod cgroups (cgroupfs driver, kubepods under each hierarchy)
for h in /sys/fs/cgroup/*/; do
  [ -d "$h/kubepods" ] && find "$h/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
done
rm -rf "$state" "$rt" "$run/node.env"
"$here/stop.sh"
true
