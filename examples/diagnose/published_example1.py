"""The widely read answer's example 1, as published, written for `sinernn diagnose --code`.

    sinernn diagnose --code examples/diagnose/published_example1.py
"""

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 10)
        self.linear = nn.Linear(10, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.linear(out[-1])  # the last step of ONE unbatched sequence: shape (1,)


def build():
    torch.manual_seed(0)
    x = torch.linspace(0, 10, 1000).reshape(-1, 1)  # (1000, 1): the time, as one sequence
    y = torch.sin(x)
    model = Model()
    return {"model": model, "inputs": x, "targets": y, "optimizer": torch.optim.Adam(model.parameters(), lr=0.01)}
