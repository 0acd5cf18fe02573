"""The paper's CIFAR10 classifier (Section 5), a LeNet: 62,006 parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CifarLeNet(nn.Module):
    """conv 3->6 k5, max-pool 2, ReLU; conv 6->16 k5, max-pool 2, ReLU (400 features);
    fc 120, ReLU; fc 84, ReLU; fc 10; log-softmax. Use with the NLL loss.

    >>> model = CifarLeNet()
    >>> sum(p.numel() for p in model.parameters())
    62006
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)
