"""The PyTorch twins of Glia's zoo models used by the benchmarks (NCHW), defined once for
bench/torch_train.py (CPU) and bench/torch_gpu.py (GPU)."""
import torch.nn as nn


def tutorial_cnn(channels, size, classes=10):
    """The Keras CIFAR tutorial CNN (zoo::tutorial_cnn) on size x size x channels images."""
    flat = ((size - 2) // 2 - 2) // 2 - 2  # three valid 3x3 convolutions, two 2x2 poolings
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * flat * flat, 64), nn.ReLU(), nn.Linear(64, classes))


def tutorial_mlp(inputs=784, classes=10):
    """The tutorial MLP (zoo::tutorial_mlp)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, classes))
