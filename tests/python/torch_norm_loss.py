"""PyTorch references for tests/ops/{loss,norm}_test.cpp.

usage: torch_norm_loss.py cross_entropy DIR   (reads logits.npy, target.npy)
       torch_norm_loss.py batch_norm DIR      (reads x.npy [N,H,W,C], gamma.npy, beta.npy, gy.npy, rm.npy, rv.npy)
Writes its results as .npy files into DIR.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def cross_entropy(d):
    logits = torch.from_numpy(np.load(f"{d}/logits.npy"))
    target = torch.from_numpy(np.load(f"{d}/target.npy"))
    for tag, eps in (("0", 0.0), ("1", 0.1)):
        x = logits.clone().requires_grad_()
        loss = F.cross_entropy(x, target, label_smoothing=eps)
        loss.backward()
        np.save(f"{d}/loss{tag}.npy", loss.detach().numpy().reshape(1))
        np.save(f"{d}/grad{tag}.npy", x.grad.numpy())


def batch_norm(d):
    # Glia is NHWC; PyTorch is NCHW. Glia's (Keras) momentum m is PyTorch's 1 - m.
    x = torch.from_numpy(np.load(f"{d}/x.npy")).permute(0, 3, 1, 2).contiguous().requires_grad_()
    gamma = torch.from_numpy(np.load(f"{d}/gamma.npy")).requires_grad_()
    beta = torch.from_numpy(np.load(f"{d}/beta.npy")).requires_grad_()
    gy = torch.from_numpy(np.load(f"{d}/gy.npy")).permute(0, 3, 1, 2)
    rm = torch.from_numpy(np.load(f"{d}/rm.npy"))
    rv = torch.from_numpy(np.load(f"{d}/rv.npy"))
    momentum, eps = float(sys.argv[3]), float(sys.argv[4])
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=1.0 - momentum, eps=eps)
    y.backward(gy)
    np.save(f"{d}/y.npy", y.detach().permute(0, 2, 3, 1).contiguous().numpy())
    np.save(f"{d}/dx.npy", x.grad.permute(0, 2, 3, 1).contiguous().numpy())
    np.save(f"{d}/dgamma.npy", gamma.grad.numpy())
    np.save(f"{d}/dbeta.npy", beta.grad.numpy())
    np.save(f"{d}/rm_out.npy", rm.numpy())
    np.save(f"{d}/rv_out.npy", rv.numpy())


if __name__ == "__main__":
    torch.set_num_threads(2)
    {"cross_entropy": cross_entropy, "batch_norm": batch_norm}[sys.argv[1]](sys.argv[2])
