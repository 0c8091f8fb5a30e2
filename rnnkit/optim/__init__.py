"""Optimizers, gradient clipping and learning-rate schedules over name -> array dicts.

Everything here works on two dicts with the same keys and shapes::

    params = model.parameters()   # {"rnn.weight_ih_l0": ndarray, ...}  the model's own arrays
    grads  = model.gradients()    # {"rnn.weight_ih_l0": ndarray, ...}  same keys and shapes

* :mod:`rnnkit.optim.optimizers` - SGD, Adagrad, RMSprop, Adam, AdamW with the update rules of
  ``torch.optim``; they update ``params`` in place and save/restore their state
  (:meth:`Optimizer.state_dict`); :func:`get_optimizer` builds one by name.
* :mod:`rnnkit.optim.clipping` - :func:`clip_grad_norm`, :func:`clip_grad_value` (in place on
  ``grads``) and :func:`global_norm`.
* :mod:`rnnkit.optim.schedules` - ``lr = schedule(k)`` for step k, pure functions of the step
  (StepLR, ExponentialLR, CosineAnnealingLR, LinearWarmup, ...), checkpointed as a config.

Every public name is importable from ``rnnkit.optim`` itself.

Example (a small character-level LSTM, 100 steps of Adam with warm-up, cosine decay and
clipping)::

    from rnnkit import nn
    from rnnkit.data import BOUNDARY, LinesDataset, LinesSource, Vocab
    from rnnkit.optim import Adam, CosineAnnealingLR, LinearWarmup, clip_grad_norm

    words = ["anna", "otto", "hannah", "bob", "eve", "ada"]
    data = LinesDataset(words, Vocab.build(words, specials=(BOUNDARY,)))
    source = LinesSource(data, batch_size=4, seed=0)
    model = nn.CharLM(nn.CharLMConfig(vocab_size=len(data.vocab), hidden_size=16, num_layers=1,
                                      embedding_size=8), seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    schedule = LinearWarmup(CosineAnnealingLR(1e-2, T_max=90), warmup_steps=10)
    for k in range(100):
        model.zero_grad()
        batch, _ = source.batch(k)                        # shuffled epochs, a function of k
        loss = model.loss(batch).loss                     # mean cross-entropy, nats per char
        model.backward_loss()                             # fills model.gradients()
        grads = model.gradients()
        total = clip_grad_norm(grads, max_norm=5.0)       # norm before clipping
        opt.step(grads, lr=schedule(k))                   # lr for step k
"""

from .clipping import clip_grad_norm, clip_grad_value, global_norm
from .optimizers import OPTIMIZERS, SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, get_optimizer
from .schedules import (
                        SCHEDULE_NAMES,
                        SCHEDULES,
                        ConstantLR,
                        CosineAnnealingLR,
                        ExponentialLR,
                        LinearWarmup,
                        Schedule,
                        StepLR,
                        schedule_from_config,
)

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS",
    "clip_grad_norm", "clip_grad_value", "global_norm",
    "Schedule", "ConstantLR", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
    "schedule_from_config", "SCHEDULES", "SCHEDULE_NAMES",
]
