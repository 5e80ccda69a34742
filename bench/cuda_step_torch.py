#!/usr/bin/env python3
"""PyTorch eager twin of bench/cuda_bench.cpp's Transformer step on CUDA: 12 pre-norm blocks,
d 1024, 16 heads, seq 1024, batch 8, causal attention written out (no fused SDPA), GELU MLP x4,
MSE loss, AdamW, TF32 on. Prints the median step time in ms."""
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = True


class Block(nn.Module):
    def __init__(self, d, h, ratio=4):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ratio * d), nn.Linear(ratio * d, d)

    def forward(self, x):
        B, L, D = x.shape
        hd = D // self.h
        q, k, v = self.qkv(self.ln1(x)).reshape(B, L, 3, self.h, hd).permute(2, 0, 3, 1, 4)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        a = (torch.softmax(s, -1) @ v).permute(0, 2, 1, 3).reshape(B, L, D)
        x = x + self.out(a)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def main():
    dev = "cuda"
    model = nn.Sequential(*[Block(1024, 16) for _ in range(12)]).to(dev)
    x = torch.randn(8, 1024, 1024, device=dev)
    y = torch.randn(8, 1024, 1024, device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for it in range(7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if it >= 2:
            times.append(time.perf_counter() - t0)
    print(f"pytorch eager: {statistics.median(times) * 1e3:.1f} ms/step, peak "
          f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
