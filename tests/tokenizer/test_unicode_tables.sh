#!/usr/bin/env bash
# test_unicode_tables.sh - io/unicode_tables.inc must be exactly what gen_unicode_tables.py makes
# from Debian's unicode-data (UnicodeData.txt). Skips (exit 0, says so) only when that
# package or Debian's python3 is absent.
set -u
src=${PVLM_SOURCE_DIR:?}
ud=/usr/share/unicode/UnicodeData.txt
py=${PVLM_PYTHON:-/usr/bin/python3}
if [ ! -f "$ud" ] || ! command -v "$py" >/dev/null 2>&1; then
  echo "tokenizer_unicode_tables: SKIPPED: $ud or $py missing (apt-get install unicode-data python3)"
  exit 0
fi
ver=$(dpkg-query -W -f='${Version}' unicode-data 2>/dev/null | sed 's/-[^-]*$//')
tmp=${PVLM_TMP:?}/unicode_tables.inc
mkdir -p "$(dirname "$tmp")"
"$py" "$src/tests/tokenizer/gen_unicode_tables.py" "$ud" "$ver" > "$tmp" || { echo "FAIL: generator"; exit 1; }
if ! cmp -s "$tmp" "$src/io/unicode_tables.inc"; then
  echo "FAIL: io/unicode_tables.inc differs from the tables generated from $ud (unicode-data $ver):"
  diff "$tmp" "$src/io/unicode_tables.inc" | head -20
  exit 1
fi
echo "tokenizer_unicode_tables: io/unicode_tables.inc matches unicode-data $ver"
