#!/usr/bin/env bash
# test_ucd_tables.sh - core/ucd_tables.inc must be exactly what gen_ucd_tables.py makes from Debian's
# unicode-data. Skips (exit 0, says so) only when that package or Debian's python3 is absent.
set -u
src=${PVLM_SOURCE_DIR:?}
ud=/usr/share/unicode
py=${PVLM_PYTHON:-/usr/bin/python3}
if [ ! -f "$ud/UnicodeData.txt" ] || [ ! -f "$ud/SpecialCasing.txt" ] || ! command -v "$py" >/dev/null 2>&1; then
  echo "core_ucd_tables: SKIPPED: $ud or $py missing (apt-get install unicode-data python3)"
  exit 0
fi
ver=$(dpkg-query -W -f='${Version}' unicode-data 2>/dev/null | sed 's/-[^-]*$//')
tmp=${PVLM_TMP:?}/ucd_tables.inc
mkdir -p "$(dirname "$tmp")"
"$py" "$src/tests/core/gen_ucd_tables.py" "$ud" "$ver" > "$tmp" || { echo "FAIL: generator"; exit 1; }
if ! cmp -s "$tmp" "$src/core/ucd_tables.inc"; then
  echo "FAIL: core/ucd_tables.inc differs from the tables generated from $ud (unicode-data $ver):"
  diff "$tmp" "$src/core/ucd_tables.inc" | head -20
  exit 1
fi
echo "core_ucd_tables: core/ucd_tables.inc matches unicode-data $ver"
