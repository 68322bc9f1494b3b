#!/usr/bin/env bash
# docs/commands.md is exactly what scripts/gen-commands-doc.sh writes from the binary's --help texts:
# a flag added or changed without regenerating the reference fails here.
set -u
bin=${PVLM_BIN:?}; src=${PVLM_SOURCE_DIR:?}
if diff -u "$src/docs/commands.md" <(bash "$src/scripts/gen-commands-doc.sh" "$bin") > "${PVLM_TMP:-/tmp}.commands.diff"; then
  echo "docs/commands.md matches --help"; exit 0
fi
head -40 "${PVLM_TMP:-/tmp}.commands.diff"
echo "docs/commands.md is stale: run scripts/gen-commands-doc.sh build/cli/pvlm > docs/commands.md"
exit 1
