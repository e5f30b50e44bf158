#!/usr/bin/env bash
# Installs every Debian 12 package Cairn needs to build, run its demo, run its
# tests and run its benchmarks. Non-interactive and idempotent: packages that
# are already installed are left alone. Must run as root (or via sudo).
set -euo pipefail

PACKAGES=(
  # Toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # Libraries Cairn links against
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  librocksdb-dev libssl-dev libzstd-dev libabsl-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libguestfs-dev nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin
  libkmod-dev libarchive-dev libblkid-dev cpio initramfs-tools-core
  # Tools used by the demo, the tests and the benchmarks
  zstd e2fsprogs dosfstools mtools fdisk parted util-linux kmod time
  qemu-system-x86 qemu-utils ovmf debootstrap
  grub-pc-bin grub-efi-amd64-bin grub2-common
  libguestfs-tools linux-image-amd64 fuse3
  restic borgbackup
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
