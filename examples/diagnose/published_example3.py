"""The widely read answer's example 3 (three LSTM layers, batch_first=True, a smaller learning
rate), written for `sinernn diagnose --code`.

    sinernn diagnose --code examples/diagnose/published_example3.py
"""

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 50, num_layers=3, batch_first=True)
        self.linear = nn.Linear(50, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.linear(out[:, -1, :])  # 3-D indexing of what is, for a 2-D input, a 2-D output


def build():
    torch.manual_seed(0)
    x = torch.linspace(0, 10, 1000).reshape(-1, 1)
    y = torch.sin(x)
    model = Model()
    return {"model": model, "inputs": x, "targets": y, "optimizer": torch.optim.Adam(model.parameters(), lr=0.001)}
