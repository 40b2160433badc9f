#!/usr/bin/env bash
# Builds a busybox root filesystem tarball from Debian's busybox-static:
# scripts/busybox-rootfs.sh OUT.tar [HOST_BINARY…]
# Tests and the demo import it, since no image can be pulled here. Each
# HOST_BINARY (e.g. /usr/bin/iperf3) is copied in with the libraries ldd
# names, at the same paths.
set -euo pipefail
out=${1:?usage: busybox-rootfs.sh OUT.tar [HOST_BINARY...]}
shift
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && "$busybox" --list >/dev/null 2>&1 || { echo "busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root,home/user,var/www,usr/bin}
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$dir/etc/group" <<'G'
root:x:0:
user:x:1000:
nogroup:x:65534:
G
echo '<h1>hello from estiba</h1>' > "$dir/var/www/index.html"
for extra in "$@"; do
  cp --parents "$extra" $(ldd "$extra" | grep -o '/[^ ]*') "$dir/"
done
chmod 755 "$dir"
chmod 1777 "$dir/tmp"
chown -R 1000:1000 "$dir/home/user"
tar --numeric-owner -C "$dir" -cf "$out" .
