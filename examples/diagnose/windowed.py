"""The fix: windows of the last 32 values predict the next one. The diagnosis finds nothing.

    sinernn diagnose --code examples/diagnose/windowed.py
"""

import torch
from torch import nn

WINDOW = 32


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 10, batch_first=True)
        self.linear = nn.Linear(10, 1)

    def forward(self, x):  # x: (batch, WINDOW, 1)
        out, _ = self.rnn(x)
        return self.linear(out[:, -1, :])  # (batch, 1): one prediction per window


def build():
    torch.manual_seed(0)
    series = torch.sin(torch.linspace(0, 10, 1000))
    rows = series.unfold(0, WINDOW + 1, 1)  # (968, WINDOW + 1): a window and its next value
    inputs, targets = rows[:, :WINDOW, None], rows[:, WINDOW:]
    model = Model()
    return {"model": model, "inputs": inputs, "targets": targets,
            "optimizer": torch.optim.Adam(model.parameters(), lr=0.01)}
