#!/usr/bin/env bash
# Every subcommand listed by `pvlm --help` answers --help with exit 0 and a
# "usage:" line; an unknown flag or command exits 2 with a one-line message.
set -u
bin=${PVLM_BIN:?}
fail=0; pass=0
ok() { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

"$bin" --help | grep -q '^usage: pvlm' && ok || bad "pvlm --help"
"$bin" >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "pvlm without command must exit 2"
"$bin" no-such-command >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown command must exit 2"

cmds=$("$bin" --help | awk '/^commands:/{f=1;next} f && /^  [a-z]/{print $1}')
for c in $cmds; do
  out=$("$bin" "$c" --help); rc=$?
  [ $rc -eq 0 ] && echo "$out" | grep -q '^usage:' && ok || bad "pvlm $c --help (rc=$rc)"
  # second-level subcommands, if the command lists them
  subs=$(echo "$out" | awk '/^subcommands:/{f=1;next} f && /^  [a-z]/{print $1}')
  for s in $subs; do
    o2=$("$bin" "$c" "$s" --help); r2=$?
    [ $r2 -eq 0 ] && echo "$o2" | grep -q '^usage:' && ok || bad "pvlm $c $s --help (rc=$r2)"
    msg=$("$bin" "$c" "$s" --definitely-not-a-flag 2>&1 >/dev/null); r3=$?
    [ $r3 -eq 2 ] && [ "$(echo "$msg" | wc -l)" -eq 1 ] && ok || bad "pvlm $c $s bad flag: rc=$r3 msg=$msg"
  done
  if [ -z "$subs" ]; then
    msg=$("$bin" "$c" --definitely-not-a-flag 2>&1 >/dev/null); r3=$?
    [ $r3 -eq 2 ] && [ "$(echo "$msg" | wc -l)" -eq 1 ] && ok || bad "pvlm $c bad flag: rc=$r3 msg=$msg"
  fi
done
echo "cli_help: commands: $(echo $cmds)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
