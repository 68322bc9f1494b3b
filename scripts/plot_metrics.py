#!/usr/bin/python3
"""plot_metrics.py - loss and throughput curves of a `pvlm pretrain --metrics FILE` run, as one PNG.

    /usr/bin/python3 scripts/plot_metrics.py METRICS.jsonl OUT.png [--smooth N]

Reads the JSON lines that rank 0 appends once per step (docs/pretrain.md: step, loss, loss_img,
loss_txt, lr, grad_norm, samples, step_s, data_s, comm_s, ...). A resumed run appends to the same file,
so a step can appear twice (the steps after the last checkpoint of an interrupted run are redone): the
last record of each step wins, and every panel marks where a run was stopped and resumed (a dashed line at
the step it continued from: where steps repeat or the per-process "time" field starts again). Panels: loss (total, image-text, text-only; moving average over N steps), learning
rate and gradient norm, samples/s, and the fraction of step time waiting for data and for
communication. With `--eval-every`, the records {"kind": "eval", "step": finished steps, ...} add a
row: held-out loss per stream, and CIDEr-D / BLEU-4 of the zero-shot captions (x100, the usual
scale). Uses Debian's python3-matplotlib (Agg backend, no display needed).
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def smooth(v, n):
    if n <= 1:
        return v
    out, acc, q = [], 0.0, []
    for x in v:
        q.append(x)
        acc += x
        if len(q) > n:
            acc -= q.pop(0)
        out.append(acc / len(q))
    return out


def plot_evals(ax, ev):
    """Held-out loss per stream, and caption scores, against the finished step count."""
    for key, lab in (("val_loss_image", "held-out image-text"), ("val_loss_text", "held-out text-only")):
        pts = [e for e in ev if key in e]
        if pts:
            ax[0].plot([e["step"] for e in pts], [e[key] for e in pts], marker="o", label=lab)
    ax[0].set_title("held-out loss (same samples at every evaluation)")
    ax[0].set_xlabel("step")
    ax[0].legend()
    for key, lab in (("cider", "CIDEr-D"), ("bleu4", "BLEU-4")):
        pts = [e for e in ev if key in e]
        if pts:
            ax[1].plot([e["step"] for e in pts], [100 * e[key] for e in pts], marker="o", label=lab)
    ax[1].set_title("zero-shot captions of held-out images (x100)")
    ax[1].set_xlabel("step")
    if any("cider" in e for e in ev):
        ax[1].legend()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("metrics")
    ap.add_argument("out")
    ap.add_argument("--smooth", type=int, default=10, help="moving-average window in steps (1: off)")
    a = ap.parse_args()
    by_step, evals, resumes, last, last_t = {}, {}, [], -1, -1.0
    with open(a.metrics) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                print("%s:%d: skipping a bad line (%s)" % (a.metrics, i, e), file=sys.stderr)
                continue
            if r.get("kind") == "eval":
                evals[r["step"]] = r
                continue
            # a new process: it redoes this step (resumed from an older checkpoint), or its clock (seconds
            # since the process started) restarted (an exact resume continues at the next step)
            if r["step"] <= last or r.get("time", 0) < last_t:
                resumes.append(r["step"])
            last, last_t = r["step"], r.get("time", 0)
            by_step[r["step"]] = r
    if not by_step:
        sys.exit("%s: no metrics" % a.metrics)
    rows = [by_step[s] for s in sorted(by_step)]
    st = [r["step"] for r in rows]
    ok = [r for r in rows if not r.get("skipped")]
    fig, ax = plt.subplots(3 if evals else 2, 2, figsize=(12, 12 if evals else 8))
    ax[0][0].plot([r["step"] for r in ok], smooth([r["loss"] for r in ok], a.smooth), label="loss")
    for key, lab in (("loss_img", "image-text"), ("loss_txt", "text-only")):
        pts = [r for r in ok if r.get(key, -1) >= 0]
        if pts:
            ax[0][0].plot([r["step"] for r in pts], smooth([r[key] for r in pts], a.smooth), label=lab)
    ax[0][0].set_title("loss (moving average over %d steps)" % a.smooth)
    ax[0][0].set_xlabel("step")
    ax[0][0].legend()
    lr_line = ax[0][1].plot(st, [r["lr"] for r in rows], color="tab:green", label="learning rate")
    ax[0][1].set_ylabel("learning rate")
    g = ax[0][1].twinx()
    gn_line = g.plot([r["step"] for r in ok], smooth([r["grad_norm"] for r in ok], a.smooth), color="tab:red",
                     label="gradient norm (moving average)")
    g.set_ylabel("gradient norm")
    # one legend for both axes of the panel
    ax[0][1].legend(lr_line + gn_line, [h.get_label() for h in lr_line + gn_line], loc="upper right")
    ax[0][1].set_title("learning rate and gradient norm")
    ax[0][1].set_xlabel("step")
    sps = [r["samples"] / r["step_s"] if r["step_s"] > 0 else 0 for r in rows]
    ax[1][0].plot(st, smooth(sps, a.smooth))
    ax[1][0].set_title("throughput (samples/s, global)")
    ax[1][0].set_xlabel("step")
    ax[1][1].plot(st, smooth([100 * r["data_s"] / r["step_s"] for r in rows], a.smooth), label="waiting for data")
    ax[1][1].plot(st, smooth([100 * r["comm_s"] / r["step_s"] for r in rows], a.smooth), label="communication")
    ax[1][1].set_title("% of step time")
    ax[1][1].set_xlabel("step")
    ax[1][1].legend()
    if evals:
        plot_evals(ax[2], [evals[s] for s in sorted(evals)])
    for i, s in enumerate(resumes):
        for row in ax:
            for p in row:
                p.axvline(s, color="gray", linestyle="--", linewidth=1,
                          label="stopped / resumed at step %d" % s if p is ax[0][0] and i == 0 else None)
    if resumes:
        ax[0][0].legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print("wrote %s (%d steps, %d evaluations, %d resumes)" % (a.out, len(rows), len(evals), len(resumes)))


if __name__ == "__main__":
    main()
