"""Layers and models with the rnnkit contract (see :mod:`rnnkit.nn.module`)."""

from .module import Module
from .rnn import GRU, LSTM, RNN, RNNBase, recurrent_layer

__all__ = ["Module", "RNN", "LSTM", "GRU", "RNNBase", "recurrent_layer"]
