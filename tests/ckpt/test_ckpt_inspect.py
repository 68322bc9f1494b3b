#!/usr/bin/env python3
"""ckpt_inspect: `pvlm inspect` on a model file, an optimizer shard, a checkpoint step directory and a
checkpoint root, in text and --json form; corrupt inputs give exit status 1, bad flags 2.

Usage: test_ckpt_inspect.py TOOL   ($PVLM_BIN is the pvlm binary; TOOL = ckpt_interop_tool)
"""
import json
import os
import shutil
import subprocess
import sys

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


def pvlm(*args):
    return subprocess.run([os.environ["PVLM_BIN"], "inspect", *args], capture_output=True, text=True)


def main():
    tool = sys.argv[1]
    tmp = os.environ.get("PVLM_TMP", "/tmp/pvlm_ckpt_inspect")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    w = os.path.join(tmp, "w")
    subprocess.run([tool, "write", w], check=True)
    model = os.path.join(w, "model.safetensors")
    views = json.load(open(os.path.join(w, "views.json")))
    n_params = sum(v["numel"] for v in views)

    r = pvlm(model)
    check(r.returncode == 0, "inspect model: rc %d %s" % (r.returncode, r.stderr))
    check("parameters:  %d" % n_params in r.stdout, "parameter count printed")
    check("tensors match the config: yes" in r.stdout and "checksum:    ok" in r.stdout, "status lines")
    check("d_model" in r.stdout and "enc.1.mlp.fc2.weight" in r.stdout and "[16, 32]" in r.stdout, "config/table")
    r = pvlm("--json", "--checksums", model)
    j = json.loads(r.stdout)
    check(r.returncode == 0 and j["n_params"] == n_params and j["config"]["d_model"] == 16, "json summary")
    check(j["valid"] and j["matches_config"] and j["data_checksum"] == "ok", "json status")
    check(len(j["tensors"]) == len(views) and all(len(t["xxh3"]) == 16 for t in j["tensors"]), "json tensors")
    check("pvlm_config" not in j["metadata"] and j["metadata"]["format"] == "pvlm-model", "json metadata")

    r = pvlm("--json", os.path.join(w, "optim.rank00001.safetensors"))
    j = json.loads(r.stdout)
    check(r.returncode == 0 and j["metadata"]["layout"] == "flat" and j["metadata"]["rank"] == "1", "optim shard")

    # Damaged files: exit 1 with the reason.
    data = bytearray(open(model, "rb").read())
    bad = os.path.join(tmp, "bad.safetensors")
    data[-7] ^= 0x20
    open(bad, "wb").write(data)
    r = pvlm(bad)
    check(r.returncode == 1 and "MISMATCH" in r.stdout, "flipped byte reported: %s" % r.stdout[-300:])
    open(bad, "wb").write(data[:len(data) // 2])
    r = pvlm("--json", bad)
    check(r.returncode == 1 and json.loads(r.stdout)["valid"] is False, "truncated file reported")
    r = pvlm(os.path.join(tmp, "nope"))
    check(r.returncode == 1, "missing path")
    r = pvlm("--bogus", model)
    check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, "bad flag exits 2 with one line")

    # Checkpoint root and step directory.
    root = os.path.join(tmp, "ckpt")
    subprocess.run([tool, "ckptdir", root], check=True)
    r = pvlm(root)
    check(r.returncode == 0 and "latest:      step 20" in r.stdout and "would take step 20" in r.stdout,
          "root listing: %s" % r.stdout)
    step = os.path.join(root, "step_00000020")
    r = pvlm(step)
    check(r.returncode == 0 and "verified:    yes" in r.stdout and "samples_seen" in r.stdout and
          "optim.safetensors" in r.stdout and "parameters:" in r.stdout, "step dir: %s" % r.stdout[:500])
    r = pvlm("--json", step)
    j = json.loads(r.stdout)
    check(j["kind"] == "checkpoint" and j["verified"] and j["state"]["step"] == 20 and j["model"]["valid"], "step json")
    # Corrupt the newest: the step reports it, the root falls back.
    p = os.path.join(step, "optim.safetensors")
    d = bytearray(open(p, "rb").read())
    d[-1] ^= 1
    open(p, "wb").write(d)
    r = pvlm(step)
    check(r.returncode == 1 and "verified:    NO" in r.stdout, "corrupt step dir")
    # The root is not intact when its newest checkpoint is corrupt (exit 1), even though resume falls back.
    r = pvlm("--json", root)
    j = json.loads(r.stdout)
    check(r.returncode == 1 and j["resume_step"] == 10 and j["latest"] == 20 and
          [c["verified"] for c in j["checkpoints"]] == [False, True], "root json after corruption: rc %d %s" % (r.returncode, j))
    r = pvlm(root)
    check(r.returncode == 1 and "CORRUPT" in r.stdout and "would take step 10" in r.stdout,
          "root text after corruption: rc %d %s" % (r.returncode, r.stdout))

    print("ckpt_inspect: %d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
