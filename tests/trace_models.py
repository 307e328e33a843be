"""User-style torch modules for tests/test_trace.py: the recurrent idioms people write."""

from __future__ import annotations

import torch
from torch import nn


class Recurrent(nn.Module):
    """One nn.RNN / LSTM / GRU; returns its output and its final state(s) as they are."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor):
        return self.rnn(x)  # (B, T, D*H) or (T, B, D*H); h_n (L*D, B, H) [, c_n]


class LastStep(nn.Module):
    """rnn -> out[:, -1] -> Linear: a single chain in Keras (load_keras_model reads it)."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, D*H)
        return self.head(out[:, -1])  # (B, 2)


class BiGRUClassifier(nn.Module):
    """Two-layer bidirectional GRU; the two last states concatenated; a softmax head."""

    def __init__(self, features: int = 5, hidden: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)  # h (4, B, H)
        h = torch.cat((h[-2], h[-1]), dim=1)  # (B, 2H)
        return torch.softmax(self.fc(self.drop(h)), dim=-1)


class LanguageModel(nn.Module):
    """Embedding -> LSTM -> Linear with an explicit state in and out (streaming)."""

    def __init__(self, vocab: int = 20, dim: int = 6, hidden: int = 7, layers: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
        out, (h, c) = self.lstm(self.emb(tokens), (h0, c0))  # (B, T, H), (L, B, H) x 2
        return self.fc(out), h, c


class CNNLSTM(nn.Module):
    """Conv1d front-end on (B, C, T), back to (B, T, C) for an LSTM; LayerNorm; last step."""

    def __init__(self, features: int = 4, channels: int = 6, hidden: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(features, channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm1d(channels)
        self.act = nn.ReLU()
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.act(self.bn(self.conv(x.transpose(1, 2))))  # (B, C, T)
        out, _ = self.lstm(z.transpose(1, 2))  # (B, T, H)
        return self.fc(self.norm(out[:, -1]))  # (B, 1)


class TimeMajor(nn.Module):
    """batch_first=False behind a permute, a zero state built from x.size(0), out[-1]."""

    def __init__(self, features: int = 3, hidden: int = 4) -> None:
        super().__init__()
        self.rnn = nn.RNN(features, hidden, num_layers=2, nonlinearity="relu")
        self.fc = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = torch.zeros(2, x.size(0), self.rnn.hidden_size)
        out, _ = self.rnn(x.permute(1, 0, 2), h0)  # (T, B, H)
        return torch.tanh(self.fc(out[-1]) * 0.5 + 1.0)  # (B, 1)


class Projected(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 6, proj_size=2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class Sorting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return torch.sort(out, dim=1).values


class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        if out.mean() > 0:
            return out
        return -out


class Heads(nn.Module):
    """Per-step heads after a GRU: norm, activations, a residual sum, dropout, softmax."""

    def __init__(self, features: int = 3, hidden: int = 6) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.block = nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.leaky = nn.LeakyReLU(0.2)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.gru(x)  # (B, T, H)
        z = self.drop(self.leaky(self.block(seq)) + seq)  # (B, T, H)
        return torch.nn.functional.softmax(self.out(z) - 1.0, dim=-1)  # (B, T, 4)
