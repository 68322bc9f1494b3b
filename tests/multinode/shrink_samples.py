#!/usr/bin/env python3
"""shrink_samples.py - the data-order promise of a world-size change, on a real training run.

usage: shrink_samples.py LOG_PREFIX K IMAGE_MANIFEST [TEXT_MANIFEST]

LOG_PREFIX.RANK are the files `pvlm pretrain --log-samples LOG_PREFIX` wrote: one line per micro-batch,
"STEP RANK/WORLD id id ...". Steps 1..K ran on W1 ranks from scratch, steps K+1.. on W2 ranks after a
resume from the checkpoint of step K. For each stream (image ids < N_images <= text ids), as
docs/loader.md "Changing the number of ranks" states:
  * on W1 ranks every rank drew t samples; the interrupted epoch e = t // q1 (q1 = N // W1) had
    j = t % q1 of them drawn by each rank;
  * the M = N - W1*j positions left are split evenly over the W2 ranks: each draws q2 = M // W2 more
    of epoch e, and M % W2 are dropped;
  * so the j samples per old rank plus the q2 per new rank are all different, N - M % W2 of them.
Exits 1 with a message when a sample of the interrupted epoch is drawn twice or skipped.
"""
import glob
import json
import sys


def total(manifest):
    with open(manifest) as f:
        return sum(s["records"] for s in json.load(f)["shards"])


def main():
    prefix, K = sys.argv[1], int(sys.argv[2])
    n_img = total(sys.argv[3])
    n_txt = total(sys.argv[4]) if len(sys.argv) > 4 else 0
    lines = {}  # (step, rank) -> [(world, ids)] in file order (accum micro-batches)
    for path in sorted(glob.glob(prefix + ".*")):
        prev = None
        with open(path) as f:
            for ln in f:
                parts = ln.split()
                step, rw = int(parts[0]), parts[1]
                rank, world = (int(x) for x in rw.split("/"))
                key = (step, rank)
                if key != prev:  # a step written again by a later run replaces the earlier lines
                    lines[key] = []
                    prev = key
                lines[key].append((world, [int(x) for x in parts[2:]]))
    runs = []
    for first in (True, False):
        keys = sorted(k for k in lines if (k[0] <= K) == first)
        worlds = {w for k in keys for w, _ in lines[k]}
        if len(worlds) != 1:
            sys.exit("FAIL: run %s: world sizes %s in the sample logs" % ("before" if first else "after", worlds))
        W = worlds.pop()
        per = [[[], []] for _ in range(W)]  # per rank: image ids, text ids
        for step, rank in keys:
            for _, ids in lines[(step, rank)]:
                for i in ids:
                    if i < n_img:
                        per[rank][0].append(i)
                    else:
                        per[rank][1].append(i - n_img)
        runs.append((W, per))
    (W1, a), (W2, b) = runs
    ok = True
    for sid, N in ((0, n_img), (1, n_txt)):
        if N == 0:
            continue
        name = ("image", "text")[sid]
        t = len(a[0][sid])
        if any(len(a[r][sid]) != t for r in range(W1)):
            sys.exit("FAIL: %s: the %d ranks drew different counts before the change" % (name, W1))
        q1 = N // W1
        e, j = t // q1, t % q1
        drawn = [g for r in range(W1) for g in a[r][sid][e * q1:e * q1 + j]]
        M = N - W1 * j
        q2, R = M // W2, M % W2
        short = min(len(b[r][sid]) for r in range(W2)) < q2
        drawn += [g for r in range(W2) for g in b[r][sid][:q2]]
        dup = len(drawn) - len(set(drawn))
        want = len(drawn) if short else N - R
        msg = ("%s: epoch %d interrupted after %d of %d samples per rank on %d ranks; %d left, %d per rank on %d "
               "ranks, %d dropped: %d distinct of %d drawn%s" %
               (name, e, j, q1, W1, M, q2, W2, R, len(set(drawn)), len(drawn), " (run ended inside the epoch)" if short else ""))
        print(msg)
        if dup or len(set(drawn)) != want:
            print("FAIL: %s: %d samples drawn twice, %d distinct, want %d" % (name, dup, len(set(drawn)), want))
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
