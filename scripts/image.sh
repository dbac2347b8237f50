#!/usr/bin/env bash
# Builds the operator image offline from our own binaries and imports it into the test node's
# containerd (testenv/kube/node-start.sh: its dockerd and containerd), for `helm install` with
# image.pullPolicy Never. The public ./Dockerfile stays as users with a registry build it.
#   scripts/image.sh [--release] [--tag TAG] [--no-import] [--no-build]
# Default: the dev binaries (target/debug, what `cargo build --bins` already built for the
# tests; no second cold build in CI). --release: `cargo build --release --bins --locked`.
# The image: FROM scratch, kafka-backup-operator and kubectl-kafkabackup in /usr/local/bin,
# the shared libraries `ldd` names (glibc's), the dynamic loader, the CA bundle, /etc/passwd
# with uid 65532. The shipped binaries have their DWARF split off (objcopy --only-keep-debug
# into target/image/<bin>.debug, linked by .gnu_debuglink) but keep the symbol table:
# a backtrace still names the functions; gdb/addr2line with the .debug file give file:line.
# Prints the sizes. Image name: kafka-backup-operator:local (or --tag).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug tag=kafka-backup-operator:local import=1 build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --tag) tag=$2; shift ;;
    --no-import) import=0 ;;
    --no-build) build=0 ;;   # package the binaries already in target/<profile>
    *) echo "image: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bins="kafka-backup-operator kubectl-kafkabackup"
# (a no-op when the binaries are up to date; by hand, beside other builds, wrap this script in
# `flock /tmp/kbo-build.lock`: it takes no lock itself, so that scripts/test.sh can run under one)
if [ "$build" = 0 ]; then :
elif [ "$profile" = release ]; then cargo build --release --bins --locked --quiet
else cargo build --bins --locked --quiet; fi
src=target/$profile out=target/image root=target/image/rootfs
rm -rf "$root" && mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
human() { numfmt --to=iec --suffix=B "$1"; }
for b in $bins; do
  before=$(stat -c %s "$src/$b")
  objcopy --only-keep-debug "$src/$b" "$out/$b.debug"
  objcopy --strip-debug --add-gnu-debuglink="$out/$b.debug" "$src/$b" "$root/usr/local/bin/$b"
  echo "image: $b ($profile) $(human "$before") -> $(human "$(stat -c %s "$root/usr/local/bin/$b")") shipped (symbols kept; DWARF in $out/$b.debug, $(human "$(stat -c %s "$out/$b.debug")"))"
done
# exactly the libraries the dynamic linker resolves for the binaries, at the same paths
libs=$(for b in $bins; do ldd "$src/$b"; done | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' | sort -u)
for l in $libs; do
  mkdir -p "$root$(dirname "$l")"
  cp -L "$l" "$root$l"
done
# the loader path the binaries ask for, where the distribution keeps a symlink
interp=$(readelf -l "$src/kafka-backup-operator" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ ! -e "$root$interp" ]; then mkdir -p "$root$(dirname "$interp")"; cp -L "$interp" "$root$interp"; fi
echo "image: libraries: $(echo "$libs" | tr '\n' ' ')"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
cp docker/Dockerfile.local "$out/Dockerfile"
# smoke test before anything else: the stripped binary runs with only the copied libraries
env -i "$root$interp" --library-path "$(echo "$libs" | xargs -n1 dirname | sort -u | sed "s#^#$root#" | paste -sd:)" \
  "$root/usr/local/bin/kafka-backup-operator" --version >/dev/null \
  || { echo "image: the stripped binary does not start with the copied libraries" >&2; exit 1; }
node_env=testenv/kube/run/node.env
[ -f "$node_env" ] || { echo "image: no dockerd: start the test node first (testenv/kube/node-start.sh)" >&2; exit 1; }
# shellcheck disable=SC1090
source "$node_env"
"$KBO_DOCKER" build -q -t "$tag" "$out" >/dev/null
size=$("$KBO_DOCKER" image inspect -f '{{.Size}}' "$tag")
echo "image: $tag $(human "$size") (uncompressed)"
if [ "$import" = 1 ]; then
  "$KBO_DOCKER" save "$tag" | ctr --address "$KBO_CTR_ADDRESS" -n k8s.io images import - >/dev/null
  echo "image: imported into the node's containerd (k8s.io namespace) as docker.io/library/${tag}"
fi
