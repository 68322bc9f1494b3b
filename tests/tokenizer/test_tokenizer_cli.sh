#!/usr/bin/env bash
# test_tokenizer_cli.sh - `pvlm tokenizer`: train on WordNet glosses (Debian wordnet-base),
# info, encode -> decode round trip of a file with invalid UTF-8, the output formats,
# --bos/--eos, bad flags (exit 2) and a bad vocabulary directory (exit 1, one message).
set -u
bin=${PVLM_BIN:?}; tmp=${PVLM_TMP:?}
rm -rf "$tmp"; mkdir -p "$tmp"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

src=/usr/share/wordnet/data.adj
[ -f "$src" ] || { echo "FAIL: $src missing (apt-get install wordnet-base)"; exit 1; }
head -c 1500000 "$src" > "$tmp/a.txt"; tail -c 500000 "$src" > "$tmp/b.txt"
"$bin" tokenizer train --input "$tmp/a.txt" "$tmp/b.txt" --vocab-size 1000 --out "$tmp/v" > "$tmp/train.json" \
  || bad "train"
grep -q '"vocab_size": 1000' "$tmp/train.json" || bad "train stats: $(cat "$tmp/train.json")"
info=$("$bin" tokenizer info --vocab "$tmp/v")
echo "$info" | grep -q '"vocab_size": 1000, "merges": 741, "pad_id": 0, "bos_id": 1, "eos_id": 2' || bad "info: $info"
# same corpus via --input list: identical files
"$bin" tokenizer train --input "$tmp/a.txt,$tmp/b.txt" --vocab-size 1000 --out "$tmp/v2" >/dev/null || bad "train 2"
cmp -s "$tmp/v/encoder.json" "$tmp/v2/encoder.json" && cmp -s "$tmp/v/vocab.bpe" "$tmp/v2/vocab.bpe" \
  || bad "training twice differs"

# round trip of arbitrary bytes
{ head -c 3000 "$src"; printf '\xff\xfe\x80 caf\xc3\xa9 \xe2\x80\xa8 \x00 end\n\n  '; } > "$tmp/in.bin"
"$bin" tokenizer encode --vocab "$tmp/v" --input "$tmp/in.bin" --output "$tmp/ids.txt" || bad "encode"
"$bin" tokenizer decode --vocab "$tmp/v" --input "$tmp/ids.txt" --output "$tmp/back.bin" || bad "decode"
cmp -s "$tmp/in.bin" "$tmp/back.bin" || bad "decode(encode(x)) != x"
"$bin" tokenizer encode --vocab "$tmp/v" --input "$tmp/in.bin" --format json --output "$tmp/ids.json" || bad "json"
"$bin" tokenizer decode --vocab "$tmp/v" --input "$tmp/ids.json" --output "$tmp/back2.bin" || bad "decode json"
cmp -s "$tmp/in.bin" "$tmp/back2.bin" || bad "json round trip"
"$bin" tokenizer encode --vocab "$tmp/v" --input "$tmp/in.bin" --format i32 --output "$tmp/ids.i32" || bad "i32"
[ "$(stat -c %s "$tmp/ids.i32")" -eq $((4 * $(wc -w < "$tmp/ids.txt"))) ] || bad "i32 size"
out=$("$bin" tokenizer encode --vocab "$tmp/v" --text "hello" --bos --eos)
set -- $out
[ "$1" = 1 ] && [ "${!#}" = 2 ] || bad "--bos/--eos: $out"
[ "$("$bin" tokenizer decode --vocab "$tmp/v" --ids "$out" --skip-special)" = hello ] || bad "--skip-special"

# errors
"$bin" tokenizer encode --vocab "$tmp/v" --no-such-flag >/dev/null 2>&1; [ $? -eq 2 ] || bad "bad flag exit"
"$bin" tokenizer train --out "$tmp/x" >/dev/null 2>&1; [ $? -eq 2 ] || bad "train without input must exit 2"
"$bin" tokenizer train --input "$tmp/a.txt" --vocab-size 10 --out "$tmp/x" >/dev/null 2>&1; [ $? -eq 2 ] \
  || bad "vocab-size below range must exit 2"
msg=$("$bin" tokenizer encode --vocab "$tmp/nope" --text x 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "encoder.json" || bad "missing vocab: rc=$rc $msg"
msg=$("$bin" tokenizer decode --vocab "$tmp/v" --ids "5 1000" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "position 1" || bad "bad id: rc=$rc $msg"
msg=$("$bin" tokenizer encode --vocab "$tmp/v" --input "$tmp" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "is a directory, not a regular file" || bad "--input DIR: rc=$rc $msg"
[ $fail -eq 0 ] && echo "tokenizer_cli: PASSED"
exit $fail
