#!/usr/bin/env python3
"""Per-layer speed of swavd's CPU convolutions against PyTorch's.

Runs `go test ./compute/cpu -bench EdgeSmallLayers` (every convolution of
edge-small's encoder at a batch-64 training step's shapes: forward, input
gradient, filter gradient) and then the same convolutions in PyTorch
(F.conv2d and aten.convolution_backward, 2 threads), ROUNDS times
alternately, and prints each layer's best time on both sides and the ratio.
It says which layers lose to PyTorch, where the whole-step ratio of
scripts/peer-ratio.sh cannot.

Usage: /usr/bin/python3 scripts/peer-layers.py [ROUNDS]   (make peer-deps first)
"""
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
REPEAT = 10
torch.set_num_threads(2)
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
name_re = re.compile(r"N(\d+)/(\d+)to(\d+)/(\d+)x\d+/k(\d)s(\d)/(forward|grad-input|grad-filter)")


def swavd_round():
    out = subprocess.run(["go", "test", "./compute/cpu", "-run", "X", "-bench", "EdgeSmallLayers",
                          "-benchtime", f"{REPEAT}x"], cwd=root, capture_output=True, text=True, check=True).stdout
    times = {}
    for line in out.splitlines():
        m = name_re.search(line)
        if m and line.startswith("Benchmark"):
            times[m.group(0)] = float(line.split()[2]) / 1e6  # ns/op -> ms
    return times


def torch_ms(fn):
    with torch.no_grad():
        for _ in range(2):
            fn()
        t = time.perf_counter()
        for _ in range(REPEAT):
            fn()
    return (time.perf_counter() - t) / REPEAT * 1e3


def torch_round(names):
    times = {}
    for name in names:
        n, c, co, hw, k, s, op = name_re.match(name).groups()
        n, c, co, hw, k, s = map(int, (n, c, co, hw, k, s))
        x, w = torch.randn(n, c, hw, hw), torch.randn(co, c, k, k)
        g = torch.randn_like(F.conv2d(x, w, stride=s, padding=k // 2))
        mask = [op == "grad-input", op == "grad-filter", False]
        if op == "forward":
            fn = lambda: F.conv2d(x, w, stride=s, padding=k // 2)
        else:
            fn = lambda: torch.ops.aten.convolution_backward(g, x, w, None, [s, s], [k // 2] * 2, [1, 1], False, [0, 0], 1, mask)
        times[name] = torch_ms(fn)
    return times


best_s, best_t = {}, {}
for _ in range(ROUNDS):
    for name, ms in swavd_round().items():
        best_s[name] = min(ms, best_s.get(name, ms))
    for name, ms in torch_round(best_s).items():
        best_t[name] = min(ms, best_t.get(name, ms))
print(f"{'layer (batch-64 step shapes)':44s} {'swavd ms':>9s} {'PyTorch ms':>10s} {'PyTorch/swavd':>13s}")
for name in best_s:
    print(f"{name:44s} {best_s[name]:9.2f} {best_t[name]:10.2f} {best_t[name] / best_s[name]:13.2f}")
