#!/usr/bin/python3
"""make_bad_images.py DATA OUT - the unreadable-image cases of test_e2e.sh bad-images.

OUT/img receives 8 good test images of DATA (make_finetune_data.py output) as ids 1..8 and, as ids
101..104: a missing file, a directory named like an image, a JPEG truncated in the middle of its
entropy-coded data, and a JPEG cut inside its header.
Writes OUT/captions.json (COCO captions, also the --image-list of pvlm vqa), OUT/questions.json (one
VQA question per image), OUT/only-bad.json (the bad images alone) and OUT/expect.json.
"""
import io
import json
import os
import shutil
import sys

from PIL import Image

data, out = sys.argv[1:3]
img = os.path.join(out, "img")
os.makedirs(img, exist_ok=True)
c = json.load(open(os.path.join(data, "classification.json")))
good = []
for i, it in enumerate(c["test"][:8]):
    shutil.copy(os.path.join(data, it["file"]), os.path.join(img, it["file"]))
    good.append({"id": i + 1, "file_name": it["file"], "caption": "a " + c["classes"][it["label"]] + " on grey"})
# a real JPEG of a test image, 64 x 64 so that its scan data is long enough to cut in the middle
buf = io.BytesIO()
Image.open(os.path.join(data, c["test"][0]["file"])).convert("RGB").resize((64, 64)).save(buf, "JPEG", quality=90)
jpeg = buf.getvalue()
sos = jpeg.index(b"\xff\xda")
with open(os.path.join(img, "truncated.jpg"), "wb") as f:
    f.write(jpeg[:sos + (len(jpeg) - sos) // 2])
with open(os.path.join(img, "header.jpg"), "wb") as f:
    f.write(jpeg[:sos // 2])
os.makedirs(os.path.join(img, "folder.jpg"), exist_ok=True)
bad = [{"id": 101, "file_name": "missing.png"}, {"id": 102, "file_name": "folder.jpg"},
       {"id": 103, "file_name": "truncated.jpg"}, {"id": 104, "file_name": "header.jpg"}]


def coco(items):
    return {"images": [{"id": it["id"], "file_name": it["file_name"]} for it in items],
            "annotations": [{"id": k + 1, "image_id": it["id"], "caption": it.get("caption", "a red circle on grey")}
                            for k, it in enumerate(items)]}


mixed = good[:4] + bad + good[4:]  # bad images between good ones: results keep input order around them
json.dump(coco(mixed), open(os.path.join(out, "captions.json"), "w"))
json.dump(coco(bad), open(os.path.join(out, "only-bad.json"), "w"))
json.dump({"questions": [{"image_id": it["id"], "question": "what color is the shape?", "question_id": 10 * it["id"]}
                         for it in mixed]}, open(os.path.join(out, "questions.json"), "w"))
json.dump({"good": [it["id"] for it in mixed if it["id"] < 100], "bad": [it["id"] for it in bad]},
          open(os.path.join(out, "expect.json"), "w"))
