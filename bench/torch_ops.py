"""PyTorch's side of the op benchmarks: prints "name<TAB>seconds" lines.

Run with torch.set_num_threads(2) and the OpenMP build of OpenBLAS (scripts/run-bench sets
LD_LIBRARY_PATH), so PyTorch is measured at its best on this machine. Convolution and pooling
are timed in both NCHW and channels_last memory formats; the faster one is reported.
"""
import sys
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)


def seconds_per_call(f, min_round_s=0.05, rounds=7):
    for _ in range(3):
        f()
    best = float("inf")
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        while True:
            f()
            n += 1
            el = time.perf_counter() - t0
            if el >= min_round_s:
                break
        best = min(best, el / n)
    return best


def report(name, s):
    print(f"{name}\t{s:.9g}", flush=True)


def conv_layers():
    for name, h, w, cin, cout in [("conv1", 32, 32, 3, 32), ("conv2", 15, 15, 32, 64), ("conv3", 6, 6, 64, 64)]:
        best = float("inf")
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(64, cin, h, w).to(memory_format=fmt).requires_grad_()
            conv = torch.nn.Conv2d(cin, cout, 3).to(memory_format=fmt)
            g = torch.randn(64, cout, h - 2, w - 2).to(memory_format=fmt)

            def step():
                y = conv(x)
                torch.autograd.grad(y, [x, conv.weight, conv.bias], g)

            best = min(best, seconds_per_call(step))
        report(f"{name}_fwd_bwd", best)


def maxpool():
    for name, h, c in [("maxpool_30x30x32", 30, 32), ("maxpool_13x13x64", 13, 64)]:
        best = float("inf")
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(64, c, h, h).to(memory_format=fmt).requires_grad_()
            g = torch.randn(64, c, h // 2, h // 2).to(memory_format=fmt)

            def step():
                y = torch.nn.functional.max_pool2d(x, 2)
                torch.autograd.grad(y, [x], g)

            best = min(best, seconds_per_call(step))
        report(f"{name}_fwd_bwd", best)


def elementwise():
    n = 16 << 20
    a, b = torch.randn(n), torch.randn(n)
    report("add_16M", seconds_per_call(lambda: torch.add(a, b), 0.3))
    report("mul_16M", seconds_per_call(lambda: torch.mul(a, b), 0.3))
    report("relu_16M", seconds_per_call(lambda: torch.relu(a), 0.3))


def matmul():
    for n in (256, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        report(f"matmul_{n}", seconds_per_call(lambda: torch.matmul(a, b), 0.2, 5))


if __name__ == "__main__":
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    for fn_name, fn in [("conv", conv_layers), ("pool", maxpool), ("elementwise", elementwise), ("matmul", matmul)]:
        if not only or only == fn_name:
            fn()
