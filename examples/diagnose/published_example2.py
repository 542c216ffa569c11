"""The widely read answer's example 2 (example 1 with an LSTM), written for `sinernn diagnose --code`.

    sinernn diagnose --code examples/diagnose/published_example2.py
"""

import torch
from torch import nn

HIDDEN = 10  # the published example leaves it open


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, HIDDEN)
        self.linear = nn.Linear(HIDDEN, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.linear(out[-1])


def build():
    torch.manual_seed(0)
    x = torch.linspace(0, 10, 1000).reshape(-1, 1)
    y = torch.sin(x)
    model = Model()
    return {"model": model, "inputs": x, "targets": y, "optimizer": torch.optim.Adam(model.parameters(), lr=0.01)}
