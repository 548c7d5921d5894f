"""PyTorch references for the conv / pool tests (tests/ops/conv_test.cpp, pool_test.cpp).

Tensors come and go as .npy in Glia's layouts (NHWC activations, Keras kernels
[KH, KW, C_in / groups, C_out]); PyTorch runs NCHW. Padding is applied with
F.pad so that asymmetric ("same") padding works too.

Each argument is one job, its fields separated by commas (one Python start for many cases):
  conv,DIR,sh,sw,pt,pb,pl,pr,dh,dw,groups   reads x w b gy, writes y gx gw gb
  max|avg,DIR,kh,kw,sh,sw,pt,pb,pl,pr       reads x gy, writes y gx
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(d, name):
    return torch.from_numpy(np.load(f"{d}/{name}.npy"))


def save(d, name, t):
    np.save(f"{d}/{name}.npy", t.detach().contiguous().numpy())


def nchw(t):
    return t.permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def conv(d, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    x = nchw(load(d, "x")).requires_grad_(True)
    w = load(d, "w").permute(3, 2, 0, 1).requires_grad_(True)  # [O, I/g, KH, KW]
    b = load(d, "b").requires_grad_(True)
    y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, stride=(sh, sw), dilation=(dh, dw), groups=groups)
    y.backward(nchw(load(d, "gy")))
    save(d, "y", nhwc(y))
    save(d, "gx", nhwc(x.grad))
    save(d, "gw", w.grad.permute(2, 3, 1, 0))
    save(d, "gb", b.grad)


def pool(d, kind, kh, kw, sh, sw, pt, pb, pl, pr):
    x = nchw(load(d, "x")).requires_grad_(True)
    pads = (pl, pr, pt, pb)
    if kind == "max":
        y = F.max_pool2d(F.pad(x, pads, value=-float("inf")), (kh, kw), (sh, sw))
    else:  # mean over the real cells only, as Keras
        s = F.avg_pool2d(F.pad(x, pads), (kh, kw), (sh, sw), divisor_override=1)
        n = F.avg_pool2d(F.pad(torch.ones_like(x), pads), (kh, kw), (sh, sw), divisor_override=1)
        y = s / n
    y.backward(nchw(load(d, "gy")))
    save(d, "y", nhwc(y))
    save(d, "gx", nhwc(x.grad))


def main():
    torch.set_num_threads(2)
    for job in sys.argv[1:]:
        mode, d, *rest = job.split(",")
        nums = [int(v) for v in rest]
        if mode == "conv":
            conv(d, *nums)
        elif mode in ("max", "avg"):
            pool(d, mode, *nums)
        else:
            sys.exit(f"unknown job {job}")


if __name__ == "__main__":
    main()
