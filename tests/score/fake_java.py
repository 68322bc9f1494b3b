#!/usr/bin/env python3
# A stand-in for `java -jar meteor-1.5.jar ... -stdio` and `java -jar spice-1.0.jar IN ... -out OUT`
# used by test_score_cli.sh to check pvlm's METEOR/SPICE plumbing (the real jars are not available
# here). METEOR: "SCORE ||| refs... ||| hyp" -> "<hyp words> <refs>", "EVAL ||| s1 ||| s2..." ->
# one score per image (words/100) and their mean. SPICE: scores.All.f = words(test)/10.
import json
import sys

args = sys.argv[1:]
if "-stdio" in args:
    for line in sys.stdin:
        line = line.rstrip("\n")
        parts = line.split(" ||| ")
        if parts[0] == "SCORE":
            hyp = parts[-1]
            print("%d %d" % (len(hyp.split()), len(parts) - 2), flush=True)
        elif parts[0] == "EVAL":
            scores = [int(p.split()[0]) / 100.0 for p in parts[1:]]
            for s in scores:
                print(repr(s), flush=True)
            print(repr(sum(scores) / len(scores)), flush=True)
            break
else:
    jar = args.index("-jar")
    inp = args[jar + 3]
    out = args[args.index("-out") + 1]
    data = json.load(open(inp))
    json.dump([{"image_id": d["image_id"], "scores": {"All": {"f": len(d["test"].split()) / 10.0}}} for d in data],
              open(out, "w"))
