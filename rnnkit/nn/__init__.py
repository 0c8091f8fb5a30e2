"""Layers and models with the rnnkit contract (see :mod:`rnnkit.nn.module`).

Trainable cells for hand-written loops: ``cell = LSTMCell(D, H)``; per step
``h, c = cell(x_t, (h, c))`` (None = zeros); then ``dx, dstate = cell.backward_step(dstate_out)``
latest step first, or ``cell.backward(douts)`` for the whole loop (see :mod:`rnnkit.nn.cells`);
``LayerNormLSTMCell``/``LayerNormGRUCell`` the same with layer normalisation, and
``LockedDropout`` one dropout mask per sequence for such loops.
"""

from . import utils  # noqa: F401  (rnnkit.nn.utils.pad_sequence / unpad_sequence)
from .cells import (
                    GRUCell,
                    LayerNormGRUCell,
                    LayerNormLSTMCell,
                    LSTMCell,
                    RNNCell,
                    RNNCellBase,
                    recurrent_cell,
)
from .layers import Dropout, Embedding, Linear, LockedDropout, Sequential
from .losses import CrossEntropyLoss, MSELoss
from .models import (
                     CharLM,
                     CharLMConfig,
                     LossResult,
                     SequenceClassifier,
                     SequenceClassifierConfig,
                     SequenceRegressor,
                     SequenceRegressorConfig,
)
from .module import Module
from .registry import model_from_config
from .rnn import GRU, LSTM, RNN, RNNBase, recurrent_layer
from .seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = ["Module", "RNN", "LSTM", "GRU", "RNNBase", "recurrent_layer", "RNNCell", "LSTMCell",
           "GRUCell", "RNNCellBase", "LayerNormLSTMCell", "LayerNormGRUCell", "recurrent_cell",
           "Linear", "Embedding", "Dropout", "LockedDropout", "Sequential", "CrossEntropyLoss",
           "MSELoss", "CharLM", "CharLMConfig",
           "SequenceClassifier", "SequenceClassifierConfig", "SequenceRegressor",
           "SequenceRegressorConfig", "LossResult", "model_from_config", "Seq2Seq", "Seq2SeqConfig"]
