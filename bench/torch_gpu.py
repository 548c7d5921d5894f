"""PyTorch's side of the GPU training benchmark (bench/gpu_bench.cpp is Glia's): the same three
networks (the tutorial CIFAR CNN at bs 256, the tutorial MLP at bs 1024, the ResNet-18-style CIFAR
network at bs 256), synthetic data of the same shapes kept on the CPU in pinned memory, Adam and
cross-entropy on logits, written as a PyTorch user would: NCHW, a plain eager loop over shuffled
index batches, each batch sent with .to(device, non_blocking=True).

Prints "torch_gpu_<model>_bs<B><TAB><ms per step>" and "torch_gpu_<model>_bs<B>_peak_mem<TAB><bytes>".
Peak memory is measured as Glia's: torch.cuda.max_memory_allocated() during the timed epoch (peak
stats reset after the warm-up) minus memory_allocated() before the model moved to the device, so
weights, gradients, Adam state, batches and activations all count; on the CPU it prints "n/a".
Usage: torch_gpu.py cnn|mlp|resnet18 [steps] [device]   (device default cuda)
Float32 throughout, TF32 off in matmuls and convolutions as Glia's default; GLIA_BENCH_TF32=1 allows
TF32 on both sides.
"""
import os
import sys
import time

import torch
import torch.nn as nn

import torch_models

which = sys.argv[1] if len(sys.argv) > 1 else ""
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
device = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cuda")
if which not in ("cnn", "mlp", "resnet18") or steps < 1:
    sys.exit("usage: torch_gpu.py cnn|mlp|resnet18 [steps >= 1] [device]")
on_gpu = device.type == "cuda"
# The same arithmetic on both sides: plain float32 (Glia's default), unless GLIA_BENCH_TF32=1 lets
# both use TF32 tensor cores. (PyTorch's own default allows TF32 in cuDNN convolutions only.)
tf32 = os.environ.get("GLIA_BENCH_TF32", "0") == "1"
torch.backends.cudnn.allow_tf32 = tf32
torch.backends.cuda.matmul.allow_tf32 = tf32
batch = 1024 if which == "mlp" else 256
warmup_steps = 5
torch.manual_seed(0)


def conv_bn(cin, cout, k, stride):
    # Keras' BatchNormalization defaults (epsilon 1e-3, moving average kept at 0.99), as Glia's.
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), *conv_bn(cout, cout, 3, 1))
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def resnet18_cifar(classes=10):
    layers = [*conv_bn(3, 64, 3, 1), nn.ReLU(inplace=True)]
    cin = 64
    for i, f in enumerate((64, 128, 256, 512)):
        layers += [BasicBlock(cin, f, 1 if i == 0 else 2), BasicBlock(f, f, 1)]
        cin = f
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


if which == "cnn":  # the Keras CIFAR tutorial CNN on 32x32x3
    model = torch_models.tutorial_cnn(3, 32)
    image = (3, 32, 32)
elif which == "mlp":  # the tutorial MLP on 28x28x1
    model = torch_models.tutorial_mlp()
    image = (1, 28, 28)
else:
    model = resnet18_cifar()
    image = (3, 32, 32)

# Synthetic data, made once on the CPU: enough for the warm-up and for the timed epoch.
n = max(steps, warmup_steps) * batch
x = torch.rand((n, *image))
y = torch.randint(0, 10, (n,))
if on_gpu:
    x, y = x.pin_memory(), y.pin_memory()
    base = torch.cuda.memory_allocated(device)

model = model.to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()


def epoch(count):
    model.train()
    perm = torch.randperm(count)
    for i in range(0, count, batch):
        idx = perm[i : i + batch]
        xb, yb = x[idx], y[idx]
        if on_gpu:  # what DataLoader(pin_memory=True) hands out
            xb, yb = xb.pin_memory(), yb.pin_memory()
        xb = xb.to(device, non_blocking=True)
        yb = yb.to(device, non_blocking=True)
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()


epoch(warmup_steps * batch)
if on_gpu:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
t0 = time.perf_counter()
epoch(steps * batch)
if on_gpu:
    torch.cuda.synchronize(device)
s = time.perf_counter() - t0
peak = str(torch.cuda.max_memory_allocated(device) - base) if on_gpu else "n/a"
name = f"torch_gpu_{which}_bs{batch}"
print(f"{name}\t{s * 1e3 / steps:.6f}\n{name}_peak_mem\t{peak}", flush=True)
params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers() if b.dtype.is_floating_point)
print(f"{name}: {params} parameters, {steps} steps on {device}, {s:.3f} s, TF32 {'on' if tf32 else 'off'}",
      file=sys.stderr)
