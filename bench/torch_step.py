#!/usr/bin/python3
"""PyTorch peer of bench/bench_train_step.c: the same model (tests/model/torch_ref.py, written from docs/model.md's
spec) in float32, the same batch (read from the safetensors file the C bench writes), the same step
(zero_grad, forward, backward, clip_grad_norm_, AdamW over all parameters), at the same thread count.
Prints the median step time and `samples_per_s=<x>`. With --autocast bf16 the forward (and so the backward)
runs under torch.autocast("cpu", dtype=torch.bfloat16): PyTorch's own CPU mixed precision, the peer of
pvlm's --precision bf16 (float32 parameters, gradients and optimizer).

Usage: torch_step.py --batch FILE --threads N [--steps 5] [--warmup 1] [--autocast bf16]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "model"))
import torch_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--autocast", choices=["", "bf16"], default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    arrays, meta = torch_ref.load_st(a.batch)
    cfg = json.loads(meta["pvlm_config"])
    bt = {k: torch.from_numpy(v) for k, v in arrays.items()}
    d, F, V = cfg["d_model"], cfg["d_ff"], cfg["vocab_size"]
    P, S = cfg["patch_size"], cfg["image_size"]
    Np = (S // P) ** 2
    shapes = {"patch_embed.weight": (d, 3 * P * P), "patch_embed.bias": (d,), "img_pos": (Np, d),
              "tok_embed": (V, d), "enc_text_pos": (cfg["max_prefix_len"], d), "dec_pos": (cfg["max_suffix_len"], d),
              "enc.ln_f.weight": (d,), "enc.ln_f.bias": (d,), "dec.ln_f.weight": (d,), "dec.ln_f.bias": (d,)}
    lin = {"attn.qkv": (3 * d, d), "attn.out": (d, d), "mlp.fc1": (F, d), "mlp.fc2": (d, F)}
    for i in range(cfg["n_enc_layers"]):
        for n in ("ln1", "ln2"):
            shapes[f"enc.{i}.{n}.weight"] = shapes[f"enc.{i}.{n}.bias"] = (d,)
        for n, s in lin.items():
            shapes[f"enc.{i}.{n}.weight"], shapes[f"enc.{i}.{n}.bias"] = s, (s[0],)
    dlin = {"self.qkv": (3 * d, d), "self.out": (d, d), "cross.q": (d, d), "cross.kv": (2 * d, d),
            "cross.out": (d, d), "mlp.fc1": (F, d), "mlp.fc2": (d, F)}
    for i in range(cfg["n_dec_layers"]):
        for n in ("ln1", "ln_cross", "ln2"):
            shapes[f"dec.{i}.{n}.weight"] = shapes[f"dec.{i}.{n}.bias"] = (d,)
        for n, s in dlin.items():
            shapes[f"dec.{i}.{n}.weight"], shapes[f"dec.{i}.{n}.bias"] = s, (s[0],)
    params = {}
    for k, s in shapes.items():
        if k.endswith("bias"):
            t = torch.zeros(s)
        elif ("ln" in k) and k.endswith("weight"):
            t = torch.ones(s)
        else:
            t = torch.randn(s) * 0.02
        params[k] = t.requires_grad_(True)
    model = torch_ref.Ref(cfg, params)
    opt = torch.optim.AdamW(list(params.values()), lr=1e-5, weight_decay=0.01)
    times, ctimes = [], []
    for s in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
            loss = model.loss(bt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
            ctimes.append((time.process_time() - c0) / a.threads)

    def median(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])

    med, cmed = median(times), median(ctimes)
    B = bt["prefix"].shape[0]
    tag = " bf16 autocast" if a.autocast else " fp32"
    print(f"[threads {a.threads}] torch {torch.__version__}{tag}: step {med:.3f} s (median of {a.steps}), "
          f"samples_per_s={B / med:.3f}; by CPU time: step {cmed:.3f} s, cpu_samples_per_s={B / cmed:.3f} "
          f"(loss {float(loss):.4f}, torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
