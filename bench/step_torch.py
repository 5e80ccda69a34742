#!/usr/bin/python3
"""PyTorch (CPU) twin of bench/step.cpp: the same three models, the same training step
(zero_grad, forward, loss, backward, SGD momentum step, read the loss), median time per step.

Run by build/bench/step; alone: /usr/bin/python3 bench/step_torch.py --threads 2 --iters 10
Prints one JSON object per model: {"model": ..., "ms": ...}.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Pre-norm block as lethe::nn::TransformerBlock: fused qkv, softmax(q k^T / sqrt(d)) v, GELU MLP."""

    def __init__(self, d, heads, ratio=4):
        super().__init__()
        self.h = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ratio * d)
        self.fc2 = nn.Linear(ratio * d, d)

    def attn(self, x):
        B, L, D = x.shape
        hd = D // self.h
        qkv = self.qkv(x).reshape(B, L, 3, self.h, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        return self.out_proj(a.permute(0, 2, 1, 3).reshape(B, L, D))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def models():
    mlp = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    cnn = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
    tr = nn.Sequential(*[Block(256, 4) for _ in range(4)])
    return [
        ("mlp", mlp, torch.randn(256, 784), torch.randint(0, 10, (256,)), "ce"),
        ("cnn", cnn, torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)), "ce"),
        ("transformer", tr, torch.randn(16, 128, 256), torch.randn(16, 128, 256), "mse"),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name, model, x, y, loss_kind in models():
        if a.only and name not in a.only.split(","):
            continue
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        times = []
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y) if loss_kind == "ce" else F.mse_loss(out, y)
            loss.backward()
            opt.step()
            loss.item()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        print(json.dumps({"model": name, "ms": 1000 * statistics.median(times)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
