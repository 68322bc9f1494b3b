#!/usr/bin/python3
"""Reference SimVLM-style PrefixLM written in PyTorch from docs/model.md's specification (not from pvlm's C).

Usage: torch_ref.py DIR   (DIR holds model.safetensors, batch.safetensors, result.safetensors written by
tests/model/test_torch_parity.c). Runs in float64 and checks pvlm's results:
  loss (rel 1e-5), every parameter gradient and every parameter after 3 AdamW steps (relative L2 error
  per tensor <= 1e-4), greedy decode ids (identical).
Exit code 0 = agreement. The safetensors format is parsed here directly (8-byte little-endian header
length, JSON header, raw little-endian data), since Debian has no python3-safetensors.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DT = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "U8": np.uint8, "I64": np.int64}


def load_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = hdr.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np.dtype(DT[t["dtype"]]).newbyteorder("<")).reshape(t["shape"])
        out[name] = arr.copy()
    return out, meta


def layer_norm(x, p, name, eps):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], eps)


# When set, the products pvlm runs in bf16 under --precision bf16 (every linear layer, the patch / conv stem
# projections, the tied head and attention's q k^T and a v) take bf16-rounded inputs (round to nearest even, as
# torch's float -> bfloat16 conversion) and accumulate in the working precision: an emulation of pvlm's bf16.
EMULATE_BF16 = False


def bf(t):
    return t.to(torch.bfloat16).to(t.dtype) if EMULATE_BF16 else t


def linear(x, p, name):
    return F.linear(bf(x), bf(p[name + ".weight"]), p[name + ".bias"])


def attention(q, k, v, H, key_visible=None, causal=False):
    """q [B,Tq,d], k/v [B,Tk,d]; key_visible [B,Tk] bool."""
    B, Tq, d = q.shape
    Tk = k.shape[1]
    dh = d // H
    q = q.view(B, Tq, H, dh).transpose(1, 2)
    k = k.view(B, Tk, H, dh).transpose(1, 2)
    v = v.view(B, Tk, H, dh).transpose(1, 2)
    s = bf(q) @ bf(k).transpose(-1, -2) / math.sqrt(dh)
    if key_visible is not None:
        s = s.masked_fill(~key_visible[:, None, None, :], float("-inf"))
    if causal:
        cm = torch.ones(Tq, Tk, dtype=torch.bool).tril()
        s = s.masked_fill(~cm[None, None], float("-inf"))
    a = torch.softmax(s, dim=-1)
    return (bf(a) @ bf(v)).transpose(1, 2).reshape(B, Tq, d)


class Ref:
    def __init__(self, cfg, params):
        self.c = cfg
        self.p = params

    def image_tokens(self, images):
        c, p = self.c, self.p
        x = (images.to(p["img_pos"].dtype) / 255.0 - 0.5) / 0.5  # [B,S,S,3], in the params dtype
        x = x.permute(0, 3, 1, 2)  # [B,3,S,S]
        d, P = c["d_model"], c["patch_size"]
        if c["stem"] == "patch":
            w = p["patch_embed.weight"].view(d, 3, P, P)
            t = F.conv2d(bf(x), bf(w), p["patch_embed.bias"], stride=P)
        else:
            C, G = c["conv_channels"], c["conv_groups"]
            h = F.conv2d(bf(x), bf(p["stem.conv_in.weight"]), p["stem.conv_in.bias"], stride=2)
            for i in range(c["conv_blocks"]):
                # .to(params dtype): a no-op in float64; under CPU autocast torch 1.13's group_norm does not
                # cast a bf16 conv output back to float32 itself
                g = F.group_norm(h.to(p["img_pos"].dtype), G, p[f"stem.block.{i}.gn.weight"],
                                 p[f"stem.block.{i}.gn.bias"], c["ln_eps"])
                g = F.gelu(g, approximate="tanh")
                h = h + F.conv2d(bf(g), bf(p[f"stem.block.{i}.conv.weight"]), p[f"stem.block.{i}.conv.bias"], padding=1)
            h = F.group_norm(h.to(p["img_pos"].dtype), G, p["stem.gn_f.weight"], p["stem.gn_f.bias"], c["ln_eps"])
            q = P // 2
            w = p["patch_embed.weight"].view(d, C, q, q)
            t = F.conv2d(bf(h), bf(w), p["patch_embed.bias"], stride=q)
        t = t.flatten(2).transpose(1, 2)  # [B,Np,d], patches row-major
        return t + p["img_pos"][None]

    def encode(self, bt):
        c, p = self.c, self.p
        B = bt["prefix"].shape[0]
        Lp = bt["prefix"].shape[1]
        nv, nctx = c["n_vpt"], c["n_ctx"]
        img = self.image_tokens(bt["images"])
        Np = img.shape[1]
        txt = p["tok_embed"][bt["prefix"].long()]  # [B,Lp,d]
        if nctx > 0:
            ctx = p["coop.ctx"][bt["ctx_set"].long()]  # [B,M,d]
            txt = torch.cat([ctx, txt[:, nctx:]], dim=1)
        txt = txt + p["enc_text_pos"][:Lp][None]
        parts = [img]
        if nv > 0:
            parts.append(p["vpt.prompts"][0][None].expand(B, -1, -1))
        parts.append(txt)
        x = torch.cat(parts, dim=1)
        j = torch.arange(Lp)[None]
        txt_vis = (j < bt["prefix_len"].long()[:, None]) | (j < nctx)
        vis = torch.cat([bt["has_image"].bool()[:, None].expand(B, Np), torch.ones(B, nv, dtype=torch.bool), txt_vis], 1)
        d, H = c["d_model"], c["n_heads"]
        for l in range(c["n_enc_layers"]):
            if nv > 0 and c["vpt_deep"] and l > 0:
                x = torch.cat([x[:, :Np], p["vpt.prompts"][l][None].expand(B, -1, -1), x[:, Np + nv:]], dim=1)
            h = layer_norm(x, p, f"enc.{l}.ln1", c["ln_eps"])
            qkv = linear(h, p, f"enc.{l}.attn.qkv")
            q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
            x = x + linear(attention(q, k, v, H, vis), p, f"enc.{l}.attn.out")
            h = layer_norm(x, p, f"enc.{l}.ln2", c["ln_eps"])
            x = x + linear(F.gelu(linear(h, p, f"enc.{l}.mlp.fc1"), approximate="tanh"), p, f"enc.{l}.mlp.fc2")
        return layer_norm(x, p, "enc.ln_f", c["ln_eps"]), vis

    def decode_logits(self, E, vis, dec_in):
        c, p = self.c, self.p
        d, H = c["d_model"], c["n_heads"]
        Ls = dec_in.shape[1]
        y = p["tok_embed"][dec_in.long()] + p["dec_pos"][:Ls][None]
        for l in range(c["n_dec_layers"]):
            h = layer_norm(y, p, f"dec.{l}.ln1", c["ln_eps"])
            qkv = linear(h, p, f"dec.{l}.self.qkv")
            y = y + linear(attention(qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:], H, None, True), p,
                           f"dec.{l}.self.out")
            h = layer_norm(y, p, f"dec.{l}.ln_cross", c["ln_eps"])
            q = linear(h, p, f"dec.{l}.cross.q")
            kv = linear(E, p, f"dec.{l}.cross.kv")
            y = y + linear(attention(q, kv[..., :d], kv[..., d:], H, vis), p, f"dec.{l}.cross.out")
            h = layer_norm(y, p, f"dec.{l}.ln2", c["ln_eps"])
            y = y + linear(F.gelu(linear(h, p, f"dec.{l}.mlp.fc1"), approximate="tanh"), p, f"dec.{l}.mlp.fc2")
        y = layer_norm(y, p, "dec.ln_f", c["ln_eps"])
        return bf(y) @ bf(p["tok_embed"]).t()

    def loss(self, bt):
        E, vis = self.encode(bt)
        logits = self.decode_logits(E, vis, bt["dec_in"])
        t = bt["targets"].long()
        n = (t != -1).sum()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t.reshape(-1), ignore_index=-1,
                               reduction="sum") / n

    @torch.no_grad()
    def greedy(self, bt, max_len, min_len=0, no_repeat=0):
        """Greedy decoding by recomputing the whole decoder each step (no cache): argmax (first index on
        ties), eos forbidden before min_len tokens, a token completing an already generated n-gram
        (n = no_repeat) forbidden; stop at eos (not returned) or max_len."""
        c = self.c
        E, vis = self.encode(bt)
        B = E.shape[0]
        out = np.full((B, max_len), c["pad_id"], dtype=np.int32)
        lens = np.zeros(B, dtype=np.int32)
        for b in range(B):
            seq = [c["bos_id"]]
            for _ in range(max_len):
                logits = self.decode_logits(E[b:b + 1], vis[b:b + 1], torch.tensor([seq]))[0, -1].clone()
                g = seq[1:]
                if len(g) < min_len:
                    logits[c["eos_id"]] = float("-inf")
                n = no_repeat
                if n > 0 and len(g) + 1 >= n:
                    for i in range(len(g) - n + 1):
                        if g[i:i + n - 1] == g[len(g) - n + 1:]:
                            logits[g[i + n - 1]] = float("-inf")
                nxt = int(torch.argmax(logits))
                if nxt == c["eos_id"]:
                    break
                seq.append(nxt)
            gen = seq[1:]
            out[b, :len(gen)] = gen
            lens[b] = len(gen)
        return out, lens


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / max(nb, 1e-12) if nb > 1e-9 else np.linalg.norm(a - b)


def check_bf16(tag, cfg, weights, bt, pvlm_loss):
    """pvlm's --precision bf16 loss against (1) the float64 reference with pvlm's bf16 products emulated:
    the same roundings, so only fp32-vs-float64 accumulation differs and the fp32 tolerance (rel 1e-5)
    applies, times 10 for the rare inputs whose bf16 rounding flips with fp32 noise; (2) the float32
    reference under torch.autocast("cpu", dtype=torch.bfloat16), which rounds the same products' inputs:
    each side is within n * 2u of the exact loss to first order (u = 2^-8, n = the matrix products on the
    path to the loss), so they agree within the sum of the two bounds."""
    global EMULATE_BF16
    EMULATE_BF16 = True
    p64 = {k: torch.tensor(v, dtype=torch.float64) for k, v in weights.items()}
    with torch.no_grad():
        emu = float(Ref(cfg, p64).loss(bt))
    EMULATE_BF16 = False
    p32 = {k: torch.tensor(v, dtype=torch.float32) for k, v in weights.items()}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ac = float(Ref(cfg, p32).loss(bt))
    u = 2.0 ** -8
    # linear products plus q k^T and a v per attention (1 in the encoder, 2 in each decoder layer)
    n = 1 + 6 * cfg["n_enc_layers"] + 10 * cfg["n_dec_layers"] + 1
    tol_ac = 2 * n * 2 * u
    e_emu, e_ac = abs(pvlm_loss - emu) / abs(emu), abs(pvlm_loss - ac) / abs(ac)
    print(f"[{tag}] bf16 loss: pvlm {pvlm_loss:.7f}, emulated float64 {emu:.7f} (rel {e_emu:.2e}, tol 1e-4), "
          f"torch autocast bf16 {ac:.7f} (rel {e_ac:.2e}, tol {tol_ac:.2e})")
    return e_emu <= 1e-4 and e_ac <= tol_ac


def main():
    d = sys.argv[1]
    torch.set_default_dtype(torch.float64)
    weights, meta = load_st(f"{d}/model.safetensors")
    cfg = json.loads(meta["pvlm_config"])
    batch, _ = load_st(f"{d}/batch.safetensors")
    res, rmeta = load_st(f"{d}/result.safetensors")
    bt = {k: torch.from_numpy(v) for k, v in batch.items()}
    names = list(weights.keys())
    params = {k: torch.tensor(weights[k], dtype=torch.float64, requires_grad=True) for k in names}
    model = Ref(cfg, params)
    ok = True
    tag = d.rstrip("/").split("/")[-1]

    loss = model.loss(bt)
    loss.backward()
    le = abs(float(loss) - float(res["loss"][0])) / abs(float(loss))
    print(f"[{tag}] loss torch {float(loss):.10f} pvlm {float(res['loss'][0]):.10f} rel {le:.2e}")
    ok &= le <= 1e-5
    worst = (0.0, "")
    for k in names:
        e = rel_err(res["grad." + k], params[k].grad.numpy())
        if e > worst[0]:
            worst = (e, k)
        if e > 1e-4:
            print(f"[{tag}] gradient mismatch {k}: rel {e:.2e}")
            ok = False
    print(f"[{tag}] gradients: {len(names)} tensors, worst rel {worst[0]:.2e} ({worst[1]})")

    # 3 AdamW steps with torch.optim.AdamW; decay on matrices only (spec: not biases, LN, positional
    # tables; prompts are not matrices of the network either). Decided here from names and shapes.
    lr, b1, b2, eps, wd, clip = [float(x) for x in res["optim"]]
    no_decay_names = {"img_pos", "enc_text_pos", "dec_pos", "vpt.prompts", "coop.ctx"}

    def decays(k):
        return k not in no_decay_names and k.endswith("weight") and params[k].dim() >= 2 or k == "tok_embed"

    for k in names:
        want = "decay" if decays(k) else "no_decay"
        if rmeta.get(k) != want:
            print(f"[{tag}] decay flag of {k}: pvlm {rmeta.get(k)} spec {want}")
            ok = False
    p2 = {k: torch.tensor(weights[k], dtype=torch.float64, requires_grad=True) for k in names}
    model2 = Ref(cfg, p2)
    groups = [{"params": [p2[k] for k in names if decays(k)], "weight_decay": wd},
              {"params": [p2[k] for k in names if not decays(k)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), eps=eps)
    for s in range(3):
        for g in opt.param_groups:
            g["lr"] = float(res["lrs"][s])
        opt.zero_grad()
        model2.loss(bt).backward()
        torch.nn.utils.clip_grad_norm_([p2[k] for k in names], clip)
        opt.step()
    # The key part of a qkv / kv bias has an exactly zero gradient (softmax is invariant to adding the
    # same number to every score of a row), so in floating point it holds rounding noise that Adam
    # normalises into full-size steps of arbitrary sign: compare those slices for a ~zero gradient
    # instead of comparing their stepped values.
    d = cfg["d_model"]

    def key_slice(k):
        if k.endswith("qkv.bias") or k.endswith("self.qkv.bias"):
            return slice(d, 2 * d)
        if k.endswith("cross.kv.bias"):
            return slice(0, d)
        return None

    for k in names:
        ks = key_slice(k)
        if ks is not None:
            gmax = max(np.abs(np.asarray(res["grad." + k])).max(), 1e-30)
            kg = np.abs(res["grad." + k][ks]).max()
            if kg > 1e-5 * max(gmax, np.abs(params[k].grad.numpy()).max()):
                print(f"[{tag}] key-bias gradient of {k} not ~0: {kg:.3e}")
                ok = False
    worst = (0.0, "")
    for k in names:
        mine, ref = res["step3." + k], p2[k].detach().numpy()
        ks = key_slice(k)
        if ks is not None:
            keep = np.ones(mine.shape[0], dtype=bool)
            keep[ks] = False
            mine, ref = mine[keep], ref[keep]
        e = rel_err(mine, ref)
        if e > worst[0]:
            worst = (e, k)
        if e > 1e-4:
            print(f"[{tag}] params after 3 AdamW steps mismatch {k}: rel {e:.2e}")
            ok = False
    print(f"[{tag}] params after 3 AdamW steps: worst rel {worst[0]:.2e} ({worst[1]})")

    # greedy decoding with pvlm's weights after the 3 steps
    p3 = {k: torch.tensor(res["step3." + k], dtype=torch.float64) for k in names}
    ids, lens = Ref(cfg, p3).greedy(bt, res["decode_ids"].shape[1], int(res["decode_opt"][0]),
                                        int(res["decode_opt"][1]))
    same = np.array_equal(ids, res["decode_ids"]) and np.array_equal(lens, res["decode_len"])
    print(f"[{tag}] greedy decode: torch {ids.tolist()} len {lens.tolist()}; "
          f"pvlm {res['decode_ids'].tolist()} len {res['decode_len'].tolist()}: {'same' if same else 'DIFFERENT'}")
    ok &= same
    if "loss_bf16" in res:
        ok &= check_bf16(tag, cfg, weights, bt, float(res["loss_bf16"][0]))
    print(f"[{tag}] {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
