"""The accuracy reference for `glia train --model cnn --batch-size 64 --epochs 5`: the same
network (the Keras CIFAR tutorial CNN on 28x28x1), data, batch size and optimizer (Adam 1e-3)
in PyTorch. Prints the test accuracy after each epoch. Usage: torch_fashion_cnn.py [EPOCHS] [SEED]
"""
import gzip
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(2)
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.manual_seed(int(sys.argv[2]) if len(sys.argv) > 2 else 0)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


root = "/usr/share/datasets/fashion-mnist/"
def load(prefix):
    x = torch.from_numpy(read_idx(root + prefix + "-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(read_idx(root + prefix + "-labels-idx1-ubyte.gz").astype(np.int64))
    return x, y
x, y = load("train")
xt, yt = load("t10k")

model = nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(64, 64, 3), nn.ReLU(),
    nn.Flatten(), nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(epochs):
    model.train()
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 64):
        idx = perm[i : i + 64]
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"epoch {epoch + 1}: test accuracy {acc:.4f}", flush=True)
