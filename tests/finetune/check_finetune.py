#!/usr/bin/python3
"""check_finetune.py CASE OUT DATA - the assertions of one test_finetune.sh case on OUT/report.json
(and the finetune checkpoints beside it); exit 1 when one fails. Cases: see test_finetune.sh."""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from verdict import check, done  # noqa: E402

case, out, data = sys.argv[1:4]


def checkpoint_tensors(report):
    """(tensor names, metadata) of the first run's finetune checkpoint (safetensors header)."""
    with open(f"{out}/" + report["runs"][0]["checkpoint"], "rb") as f:
        hdr = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return sorted(k for k in hdr if k != "__metadata__"), hdr["__metadata__"]


def random_box_rate():
    """Accuracy of a random choice among the (at most 5 painted) candidate boxes on the test split."""
    g = json.load(open(f"{data}/grounding.json"))
    n = sum(len(it["refs"]) for it in g["test"])
    return sum(1.0 / min(len(it["boxes"]), 5) for it in g["test"] for _ in it["refs"]) / n


r = json.load(open(f"{out}/report.json"))
if case in ("coop", "vpt"):
    mean, zero = r["summary"][0]["mean"], r["zero_shot"]
    check(mean > zero, f"{case}: 4-shot accuracy {mean:.3f} > zero-shot {zero:.3f}")
    check(r["frozen_bit_identical"] is True, f"{case}: base tensors bit-identical after finetuning")
    names, meta = checkpoint_tensors(r)
    want = ["coop.ctx"] if case == "coop" else ["vpt.prompts"]
    check(names == want and meta["format"] == "pvlm-finetune", f"{case}: checkpoint holds only {names}")
elif case == "cpt-zero":
    rand = random_box_rate()
    # 277 test expressions: one binomial standard deviation at chance is ~0.03, so 0.10 is > 3 sigma
    check(r["zero_shot"] > rand + 0.10 and len(r["runs"]) == 0,
          f"cpt: zero-shot grounding accuracy {r['zero_shot']:.3f} > random box {rand:.3f} + 0.10 (nothing trained)")
elif case == "cpt-few":
    rand = random_box_rate()
    print(f"info cpt few-shot (single colour, decoder): K=4 {r['summary'][0]['mean']:.3f}, zero-shot {r['zero_shot']:.3f}")
    check(r["zero_shot"] > rand + 0.10, f"cpt single-colour zero-shot {r['zero_shot']:.3f} > random box {rand:.3f} + 0.10")
    check(r["frozen_bit_identical"] is True and len(r["runs"]) == 1, "cpt few-shot: frozen tensors bit-identical")
    names, _ = checkpoint_tensors(r)
    check(names and all(k.startswith("dec.") for k in names),
          f"cpt few-shot: checkpoint holds only the {len(names)} dec.* tensors")
elif case == "regionft":
    rand, acc = random_box_rate(), r["runs"][0]["score"] if r["runs"] else 0.0
    check(acc > rand + 0.10, f"regionft: grounding accuracy {acc:.3f} > random box {rand:.3f} + 0.10 "
          f"(zero-shot CPT on the same base {r['zero_shot']:.3f}, printed only)")
    check(r["frozen_bit_identical"] is True, "regionft: decoder bit-identical after fine-tuning")
    names, meta = checkpoint_tensors(r)
    head = json.loads(meta.get("region_head", "[]"))
    check(names and not any(k.startswith("dec") for k in names) and "enc.0.attn.qkv.weight" in names
          and meta["method"] == "regionft" and len(head) == 64 and any(head),
          f"regionft: checkpoint holds the {len(names)} encoder-side tensors and a {len(head)}-float head")
elif case in ("caption", "vqa"):
    after, zero = r["runs"][0]["score"], r["zero_shot"]
    # validation items (every 10th) are never trained on; the base never saw this caption style or
    # the question format, so its cross-entropy is high and finetuning must at least halve it
    check(after < 0.5 * zero, f"{case}: validation cross-entropy {after:.3f} < half the base's {zero:.3f}")
    check(r["runs"][0]["final_loss"] < r["zero_shot"], f"{case}: final training loss {r['runs'][0]['final_loss']:.3f} "
          f"< base validation cross-entropy")
    names, meta = checkpoint_tensors(r)
    check(meta["format"] == "pvlm-finetune" and "tok_embed" in names and meta["method"] == "full",
          f"{case}: full finetune checkpoint with all {len(names)} tensors")
    base, ft = (json.load(open(f"{out}/score-{m}.json")) for m in ("base", "ft"))
    if case == "caption":  # the base answers in its own caption style, the finetuned model in the new one
        check(ft["CIDEr"] > base["CIDEr"] + 0.5, f"caption: pvlm caption from the finetune file, CIDEr-D "
              f"{ft['CIDEr']:.3f} > base {base['CIDEr']:.3f} + 0.5 ({ft['n_images']} images)")
    else:
        check(ft["overall"] > base["overall"] + 15, f"vqa: pvlm vqa from the finetune file, accuracy "
              f"{ft['overall']:.2f} > base {base['overall']:.2f} + 15 ({ft['n_questions']} questions)")
else:
    sys.exit(f"check_finetune.py: unknown case {case}")
done()
