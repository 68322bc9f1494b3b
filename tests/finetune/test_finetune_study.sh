#!/usr/bin/env bash
# finetune_study: scripts/finetune_study.sh --smoke (1 shot, 1 seed, a tiny base on synthetic shapes and
# painted scenes) runs every row of the study end to end, and then:
#  - the table has a number in every cell and the PNG is written;
#  - each method trains the parameters it should (probe K(d+1), CoOp M d or K M d, VPT p d or L p d,
#    full = the whole base, CPT decoder-only < the base, region fine-tuning = everything the encoder reads + a
#    d-vector head, zero-shot 0) and the frozen base stays bit-identical;
#  - every chosen learning rate / L2 weight / prompt is the best of its grid on the validation reports,
#    those reports scored the validation file, and the validation items are disjoint from the training
#    pool and from the test split (the test split is never used to choose).
set -euo pipefail
bin=${PVLM_BIN:?}; py=${PVLM_PYTHON:-/usr/bin/python3}; src=${PVLM_SOURCE_DIR:?}
w=${PVLM_TMP:?}; rm -rf "$w"; mkdir -p "$w"
OUT=$w NICE=0 PVLM=$bin PVLM_PYTHON=$py bash "$src/scripts/finetune_study.sh" --smoke > "$w/study.log" 2>&1 || {
  tail -n 30 "$w/study.log"; exit 1; }
tail -n 25 "$w/study.log"
"$py" - "$w" <<'PY'
import glob, json, sys
w = sys.argv[1]
verdicts = []  # (passed, what), printed at the end
check = lambda ok, what: verdicts.append((bool(ok), what))
res = json.load(open(f"{w}/results.json"))["results"]
table = open(f"{w}/table.md").read()
rows = [l for l in table.splitlines() if l.startswith("| ") and not l.startswith("| method")]
check("not run" not in table and len(rows) == 10 + 4, f"table.md: {len(rows)} rows (10 + 4), every cell filled")
check(open(f"{w}/accuracy_vs_shots.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n", "accuracy_vs_shots.png is a PNG")
cls, gr = res["classify"], res["ground"]
base = cls["full"]["base_params"]
K = len(json.load(open(f"{w}/tasks/classify_test.json"))["classes"])
d, L = 32, 1  # the smoke base: d_model 32, 1 encoder layer
want = {"zero-shot": 0, "probe": K * (d + 1), "full": base, "coop": 4 * d, "coop-cs": K * 4 * d, "vpt": 8 * d,
        "vpt-deep": L * 8 * d, "coop-mid": 4 * d, "coop-m8": 8 * d, "coop-m16": 16 * d}
for name, n in want.items():
    check(cls[name]["params"] == n, f"classify/{name}: trains {cls[name]['params']} parameters (expected {n})")
check(gr["zero-shot"]["params"] == 0 and gr["cpt-fs"]["params"] == base and 0 < gr["cpt-fs-dec"]["params"] < base,
      "ground: zero-shot trains nothing, CPT all = the base, decoder-only fewer")
Ls = 12  # the smoke base's suffix length: dec_pos is [Ls, d]
rft = base - gr["cpt-fs-dec"]["params"] - Ls * d + d
check(gr["regionft"]["params"] == rft, f"ground/regionft: trains {gr['regionft']['params']} parameters (expected {rft}: "
      "all but the decoder, plus the head)")
check(all(e.get("frozen_ok", True) for t in res.values() for e in t.values()), "frozen base bit-identical in every run")
for task, rows in res.items():
    for name, e in rows.items():
        if not e["grid"]:
            continue
        best = max(g["val"] for g in e["grid"])
        check(e["val"] == best and e["choice"] in [g["value"] for g in e["grid"]],
              f"{task}/{name}: chose {e['choice']!r}, the best of {len(e['grid'])} on validation ({best:.3f})")
        vals = glob.glob(f"{w}/runs/{task}/{name}/val/*/report.json")
        test = json.load(open(f"{w}/runs/{task}/{name}/test/report.json"))["settings"]["data"]
        check(len(vals) == len(e["grid"]) and
              all(json.load(open(p))["settings"]["data"].endswith(f"{task}_val.json") for p in vals)
              and test.endswith(f"{task}_test.json"), f"{task}/{name}: validation runs scored {task}_val.json only")
for task in ("classify", "ground"):
    v, t = (json.load(open(f"{w}/tasks/{task}_{s}.json")) for s in ("val", "test"))
    key = lambda e: json.dumps(e, sort_keys=True)
    pool, val, test = ({key(e) for e in x} for x in (t["train"], v["test"], t["test"]))
    check(v["train"] == t["train"] and not (val & pool) and not (val & test),
          f"{task}: same training pool in both files; {len(val)} validation items disjoint from pool and test")
for ok, what in verdicts:
    print(("ok   " if ok else "FAIL ") + what)
sys.exit(0 if all(ok for ok, _ in verdicts) else 1)
PY
