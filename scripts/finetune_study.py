#!/usr/bin/python3
"""finetune_study.py - the data splits, learning-rate choice and report of scripts/finetune_study.sh.

usage:
  finetune_study.py emoji-split DATA OUT     classification of held-out google emoji by category
  finetune_study.py val-split SRC OUT        classification.json / grounding.json -> val + test files
  finetune_study.py pick OUT V1 R1 V2 R2 ...  the value whose report R has the best validation score
  finetune_study.py report STUDY             table.md, results.json, accuracy_vs_shots.png

Every task gets two files with the *same* training pool, so a seed draws the same K-shot subset in both:
<task>_val.json (test = a validation split carved from training data) and <task>_test.json (test = the
real test split). Learning rates are chosen on the first only; the test split is never read for it.
Python standard library, plus matplotlib for the plot.
"""
import argparse
import json
import math
import os
import random
import sys


def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)


def emoji_split(args):
    """Held-out google emoji (demo_data.py's test_captions.json, never seen in pretraining) classified by
    category: per category, a seeded shuffle gives `pool` training, `val` validation and `test` test images."""
    t = json.load(open(os.path.join(args.data, "test_captions.json")))
    by = {}
    for im in t["images"]:
        by.setdefault(im["category"].lower(), []).append(im["file_name"])
    classes = sorted(by)
    rng = random.Random(args.seed)
    split = {"train": [], "val": [], "test": []}
    for label, c in enumerate(classes):
        files = sorted(by[c])
        rng.shuffle(files)
        need = args.pool + args.val + args.test
        if len(files) < need:
            sys.exit(f"emoji-split: category {c} has {len(files)} images, needs {need}")
        parts = (("train", files[:args.pool]), ("val", files[args.pool:args.pool + args.val]),
                 ("test", files[args.pool + args.val:need]))
        for name, fs in parts:
            split[name] += [{"file": f, "label": label} for f in fs]
    os.makedirs(args.out, exist_ok=True)
    dump({"classes": classes, "train": split["train"], "test": split["val"]}, os.path.join(args.out, "classify_val.json"))
    dump({"classes": classes, "train": split["train"], "test": split["test"]}, os.path.join(args.out, "classify_test.json"))
    print(json.dumps({"classes": classes, **{k: len(v) for k, v in split.items()}}))


def val_split(args):
    """make_finetune_data.py output: every `every`-th training entry becomes validation."""
    src = json.load(open(args.src))
    train = [e for i, e in enumerate(src["train"]) if i % args.every != args.every - 1]
    val = [e for i, e in enumerate(src["train"]) if i % args.every == args.every - 1]
    extra = {"classes": src["classes"]} if "classes" in src else {}
    os.makedirs(args.out, exist_ok=True)
    dump({**extra, "train": train, "test": val}, os.path.join(args.out, f"{args.task}_val.json"))
    dump({**extra, "train": train, "test": src["test"]}, os.path.join(args.out, f"{args.task}_test.json"))
    print(json.dumps({"train": len(train), "val": len(val), "test": len(src["test"])}))


def pick(args):
    """Best validation score over (value, report.json) pairs, written to OUT as {"value", "val", "grid"} and
    printed; the first wins a tie (grids are listed from the smallest value up)."""
    pairs = list(zip(args.pairs[0::2], args.pairs[1::2]))
    grid = []
    for value, path in pairs:
        r = json.load(open(path))
        grid.append({"value": value, "val": r["summary"][0]["mean"] if r["summary"] else r["zero_shot"]})
    best = max(grid, key=lambda g: g["val"])  # max keeps the first of equal scores
    dump({"value": best["value"], "val": best["val"], "grid": grid}, args.out)
    print(best["value"])


def mean_std(v):
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)


def collect(study):
    """results[task][row] = {base, params, choice, val, zero, cells {K: [scores]}} from runs/ and rows.json."""
    rows = json.load(open(os.path.join(study, "rows.json")))
    res = {}
    for row in rows:
        d = os.path.join(study, "runs", row["task"], row["name"])
        e = {"base": row["base"], "method": row["desc"], "cells": {}, "params": None, "choice": None, "val": None,
             "grid": []}
        if os.path.exists(os.path.join(d, "choice.json")):
            c = json.load(open(os.path.join(d, "choice.json")))
            e["choice"], e["val"], e["grid"] = c["value"], c["val"], c["grid"]
        p = os.path.join(d, "test", "report.json")
        if os.path.exists(p):
            r = json.load(open(p))
            e["params"] = r.get("trained_params", 0) if r["runs"] else 0
            e["base_params"] = r.get("base_params")
            e["frozen_ok"] = r.get("frozen_bit_identical")
            if not r["runs"]:
                e["cells"]["0"] = [r["zero_shot"]]
            for run in r["runs"]:
                e["cells"].setdefault(str(run["shots"]), []).append(run["score"])
        res.setdefault(row["task"], {})[row["name"]] = e
    return res


def chance(study, task):
    """Accuracy of a uniform random guess on the test split: 1/K classes, or a random candidate box (at
    most 5 per expression, as CPT paints; IoU > 0.5 with the gold box is not counted for other boxes)."""
    t = json.load(open(os.path.join(study, "tasks", f"{task}_test.json")))
    if "classes" in t:
        return 1.0 / len(t["classes"])
    rates = [1.0 / min(len(e["boxes"]), 5) for e in t["test"] for _ in e["refs"]]
    return sum(rates) / len(rates)


def report(args):
    res = collect(args.study)
    settings = json.load(open(os.path.join(args.study, "settings.json")))
    shots = settings["shots"]
    lines = []
    for task, rows in res.items():
        lines.append(f"\n### {task}: accuracy on the test split (%), mean ± std over seeds "
                     f"(random guess {100 * chance(args.study, task):.1f} %)\n")
        lines.append("| method | base | trained params | chosen on val (val acc) | " +
                     " | ".join(f"K={k}" for k in shots) + " |")
        lines.append("|---|---|---|---|" + "---|" * len(shots))
        for name, e in rows.items():
            cells = []
            for k in shots:
                v = e["cells"].get(str(k)) or e["cells"].get("0")
                if not v:
                    cells.append("not run")
                    continue
                m, s = mean_std(v)
                cells.append(f"{100 * m:.1f}" if "0" in e["cells"] else f"{100 * m:.1f} ± {100 * s:.1f}" +
                             ("" if len(v) == settings["seeds"] else f" ({len(v)} seeds)"))
            params = "—" if e["params"] is None else f"{e['params']:,}"
            if e["params"] and e.get("base_params"):
                params += f" ({100 * e['params'] / e['base_params']:.3g} %)"
            choice = "—" if e["choice"] is None else (f"\"{e['choice']}\"" if "0" in e["cells"] else str(e["choice"]))
            if e["val"] is not None:
                choice += f" ({100 * e['val']:.1f})"
            lines.append(f"| {e['method']} | {e['base']} | {params} | {choice} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    with open(os.path.join(args.study, "table.md"), "w") as f:
        f.write(table.lstrip() + "\n")
    with open(os.path.join(args.study, "results.json"), "w") as f:
        json.dump({"settings": settings, "results": res}, f, indent=1)
    print(table)
    plot(res, shots, {t: chance(args.study, t) for t in res}, os.path.join(args.study, "accuracy_vs_shots.png"))


def plot(res, shots, chances, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ablation = ("coop-mid", "coop-m8", "coop-m16")  # CoOp's ablations get their own panel
    panels = []
    for task, rows in res.items():
        main = {n: e for n, e in rows.items() if n not in ablation}
        abl = {n: e for n, e in rows.items() if n in ablation + ("zero-shot", "coop")}
        panels.append((task, main))
        if any(n in rows for n in ablation):
            panels.append((f"{task}: CoOp ablations", abl))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (task, rows) in zip(axes[0], panels):
        ax.axhline(100 * chances[task.split(":")[0]], ls=":", color="grey", label="random guess")
        for name, e in rows.items():
            if e["cells"].get("0"):
                ax.axhline(100 * e["cells"]["0"][0], ls="--", color="k", label=e["method"])
                continue
            ks = [k for k in shots if e["cells"].get(str(k))]
            if not ks:
                continue
            ms = [mean_std(e["cells"][str(k)]) for k in ks]
            ax.errorbar(ks, [100 * m for m, _ in ms], yerr=[100 * s for _, s in ms], marker="o", capsize=3,
                        label=e["method"])
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots)
        ax.set_xticklabels([str(k) for k in shots])
        ax.set_xlabel("shots (K)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("emoji-split")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--pool", type=int, default=32)
    p.add_argument("--val", type=int, default=8)
    p.add_argument("--test", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("val-split")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--task", required=True)
    p.add_argument("--every", type=int, default=4)
    p = sub.add_parser("pick")
    p.add_argument("out")
    p.add_argument("pairs", nargs="+", help="value report.json value report.json ...")
    p = sub.add_parser("report")
    p.add_argument("study")
    args = ap.parse_args()
    {"emoji-split": emoji_split, "val-split": val_split, "pick": pick, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
