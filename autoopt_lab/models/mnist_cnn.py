"""The paper's MNIST classifier (Section 5): 21,840 parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MnistCNN(nn.Module):
    """conv 1->10 k5, max-pool 2, ReLU; conv 10->20 k5, Dropout2d, max-pool 2, ReLU (320
    features); fc 50, ReLU, dropout; fc 10; log-softmax. Use with the NLL loss.

    >>> model = MnistCNN()
    >>> sum(p.numel() for p in model.parameters())
    21840
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc_drop = nn.Dropout()
        self.fc2 = nn.Linear(50, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.flatten(1)
        x = self.fc_drop(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)
