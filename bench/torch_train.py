"""PyTorch's side of the training benchmark: the same models, data, batch size and optimizer as
bench/train_bench.cpp, written as a PyTorch user would (NCHW, a plain loop over shuffled index
batches, Adam, cross-entropy from logits). Prints "name<TAB>seconds-per-image" and
"name_peak_rss<TAB>bytes" (VmHWM). Usage: torch_train.py cnn|mlp BATCH [LIMIT]
"""
import gzip
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

import torch_models

torch.set_num_threads(2)
torch.manual_seed(0)

which, batch = sys.argv[1], int(sys.argv[2])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 60000


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


root = "/usr/share/datasets/fashion-mnist/"
x = torch.from_numpy(read_idx(root + "train-images-idx3-ubyte.gz")[:limit].astype(np.float32) / 255.0)
x = x.unsqueeze(1)  # NCHW
y = torch.from_numpy(read_idx(root + "train-labels-idx1-ubyte.gz")[:limit].astype(np.int64))

if which == "cnn":  # the Keras CIFAR tutorial CNN on 28x28x1
    model = torch_models.tutorial_cnn(1, 28)
else:  # the tutorial MLP
    model = torch_models.tutorial_mlp()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()


def epoch(n):
    perm = torch.randperm(n)
    for i in range(0, n, batch):
        idx = perm[i : i + batch]
        xb, yb = x[idx], y[idx]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()


epoch(4 * batch)  # warm up
t0 = time.perf_counter()
epoch(limit)
s = time.perf_counter() - t0
peak = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
name = f"train_{which}_bs{batch}"
print(f"{name}\t{s / limit:.9g}\n{name}_peak_rss\t{peak}", flush=True)
