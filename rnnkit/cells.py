"""One time step of RNN / LSTM / GRU: forward and backward, fused and in place.

The cells are stateless strategy objects used by the generic unroll in
:mod:`rnnkit.sequence`. They only hold the *gate math*; everything shared (input projection
for all steps, the recurrent product, masking for ``lengths``, weight gradients over all
steps) lives once in the unroll.

Notation (PyTorch's, time-major, one direction of one layer):

* ``x_t`` (N, D) input, ``h_{t-1}`` (N, H) previous hidden state, ``c_{t-1}`` LSTM cell state.
* ``xp_t = x_t W_ih^T + b_x``   (N, G*H) input projection, computed for all t at once.
* ``hp_t = h_{t-1} W_hh^T``     (N, G*H) recurrent projection, one product per step.

Gate rows are fused in the order given by :data:`GATE_ORDER`.

RNN (tanh or relu):   h_t = act(xp_t + hp_t)                 with b_x = b_ih + b_hh
LSTM:                 [i, f, g, o] = [s, s, tanh, s](xp_t + hp_t),   b_x = b_ih + b_hh
                      c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)
GRU:                  [r, z] = s(xp_t[:2H] + hp_t[:2H]),  b_x = b_ih + [b_hr, b_hz, 0]
                      n = tanh(xp_t[2H:] + r * (hp_t[2H:] + b_hn))
                      h_t = (1 - z) * n + z * h_{t-1}

Forward contract: ``forward_step(g, hp, h_prev, c_prev, h_out, c_out, aux, t, b_hh)`` gets
``g = xp_t`` (a slab of the whole-sequence gate array) and overwrites it with the *activated*
gates, which are the cache for backward. Backward contract: ``backward_step(dh, dc, g, ...)``
overwrites ``g`` with the gradient of the pre-activations on the input side, so the gate array
turns into ``dG`` in place and the weight gradients are one product over all steps afterwards.
``backward_step`` may overwrite (consume) ``dh`` and ``dc``; it returns ``(dh_direct, dc_prev)``
and ``dc_prev`` may be the ``dc`` buffer itself.

Sigmoid gates are computed with one ``tanh`` per step over the whole gate slab:
``s(a) = 0.5 tanh(0.5 a) + 0.5``. The unroll multiplies the rows of ``W_ih``, ``W_hh`` and the
input bias by :meth:`gate_scale` (0.5 on sigmoid rows, 1 on tanh rows) once per call, so the
step computes ``tanh`` of the whole (N, G*H) slab and one affine ``a * t + b`` (vectors of
length G*H) turns the sigmoid rows into sigmoids. ``b_hh`` passed to ``forward_step`` is never
scaled (GRU's ``b_hn`` sits on a tanh row).
"""

from __future__ import annotations

import numpy as np

#: Fused gate order of each cell, identical to PyTorch's row order in weight_ih / weight_hh.
GATE_ORDER = {
    "RNN_TANH": ("h",),
    "RNN_RELU": ("h",),
    "LSTM": ("i", "f", "g", "o"),
    "GRU": ("r", "z", "n"),
}


class _Cell:
    mode = ""
    num_gates = 1
    has_cell_state = False

    def input_bias(self, b_ih, b_hh):
        """Bias folded into the input projection of all steps (None when there is no bias)."""
        if b_ih is None:
            return None
        return b_ih + b_hh

    def gate_scale(self, H, dtype):
        """(G*H,) factors the unroll applies to the gate rows of the weights and input bias
        (0.5 on sigmoid rows, see the module docstring), or None for no scaling."""
        return None

    def new_aux(self, T, N, H, dtype):
        """Extra per-step caches this cell needs (arrays preallocated for T steps)."""
        return {}

    def new_workspace(self, N, H, dtype):
        """Scratch (N, H) buffers reused by every backward step (no per-step allocation)."""
        return {}

    def recurrent_parts(self, G, aux, H):
        """Gradient slabs on the recurrent side and the rows of W_hh each one multiplies.

        Returns a list of (array (T, N, k), row slice of W_hh). For RNN/LSTM the recurrent
        pre-activation gradient equals the input-side one (a single part); GRU's candidate gate
        differs (r multiplies the recurrent term) so it has two parts.
        """
        return [(G, slice(None))]


class RNNCell(_Cell):
    """Elman cell: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu)."""

    def __init__(self, nonlinearity="tanh"):
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def forward_step(self, g, hp, h_prev, c_prev, h_out, c_out, aux, t, b_hh):
        g += hp                                   # (N, H) pre-activation
        if self.nonlinearity == "tanh":
            np.tanh(g, out=g)
        else:
            np.maximum(g, 0, out=g)
        h_out[...] = g                            # the activated value is both gate and state

    def backward_step(self, dh, dc, g, h_prev, c_prev, c_t, aux, t, ws=None):
        # g holds h_t; dpre = dh * act'(pre)
        if self.nonlinearity == "tanh":
            np.multiply(g, g, out=g)              # h^2
            np.subtract(1, g, out=g)              # 1 - h^2
        else:
            np.greater(g, 0, out=g)  # type: ignore[call-overload]
        g *= dh                                   # (N, H)
        return None, None


class LSTMCell(_Cell):
    """LSTM cell with PyTorch's gate order i, f, g, o (no peepholes, no projection).

    Forward::

        i = s(Wi x + bi + Ui h + ci)    f = s(...)    g = tanh(...)    o = s(...)
        c' = f * c + i * g              h' = o * tanh(c')

    With the sigmoid rows prescaled by 0.5 (:meth:`gate_scale`) the four gates are one
    ``tanh`` over the (N, 4H) slab followed by ``a * t + b`` with a = b = 0.5 on i, f, o and
    a = 1, b = 0 on g.

    Backward, with dh, dc the gradients arriving at h', c'::

        dc_tot = dc + dh * o * (1 - tanh(c')^2)
        do = dh * tanh(c') * o (1 - o)      di = dc_tot * g * i (1 - i)
        df = dc_tot * c * f (1 - f)         dg = dc_tot * i * (1 - g^2)
        dc_prev = dc_tot * f ;  dh_prev = [di, df, dg, do] @ W_hh    (done by the unroll)
    """

    mode = "LSTM"
    num_gates = 4
    has_cell_state = True

    def gate_scale(self, H, dtype):
        s = np.full(4 * H, 0.5, dtype)
        s[2 * H: 3 * H] = 1.0                     # g is a tanh gate
        return s

    def new_aux(self, T, N, H, dtype):
        a = self.gate_scale(H, dtype)             # (4H,) affine after the tanh
        b = np.where(a == 1.0, 0.0, 0.5).astype(dtype)
        return {"tanh_c": np.empty((T, N, H), dtype), "a": a, "b": b}

    def new_workspace(self, N, H, dtype):
        return {"dct": np.empty((N, H), dtype), "tmp": np.empty((N, H), dtype)}

    def forward_step(self, g, hp, h_prev, c_prev, h_out, c_out, aux, t, b_hh):
        H = h_prev.shape[1]
        g += hp                                   # (N, 4H) prescaled pre-activations
        np.tanh(g, out=g)
        g *= aux["a"]
        g += aux["b"]                             # [i, f, g, o] activated
        i, f, gg, o = g[:, :H], g[:, H: 2 * H], g[:, 2 * H: 3 * H], g[:, 3 * H:]
        tc = aux["tanh_c"][t]                     # (N, H)
        np.multiply(f, c_prev, out=c_out)
        np.multiply(i, gg, out=tc)
        c_out += tc                               # c' = f c + i g
        np.tanh(c_out, out=tc)
        np.multiply(o, tc, out=h_out)             # h' = o tanh(c')

    def backward_step(self, dh, dc, g, h_prev, c_prev, c_t, aux, t, ws=None):
        H = h_prev.shape[1]
        if ws is None:
            ws = self.new_workspace(*dh.shape, dh.dtype)
        i, f, gg, o = g[:, :H], g[:, H: 2 * H], g[:, 2 * H: 3 * H], g[:, 3 * H:]
        tc = aux["tanh_c"][t]                     # (N, H)
        dct, tmp = ws["dct"], ws["tmp"]
        dh *= o                                   # dh o            (dh is consumed)
        np.multiply(tc, tc, out=dct)
        np.subtract(1, dct, out=dct)
        dct *= dh
        if dc is not None:
            dct += dc                             # dc_tot = dc + dh o (1 - tanh^2 c')
        # do = (dh o) * tanh(c') * (1 - o)
        np.subtract(1, o, out=o)
        o *= tc
        o *= dh
        # dc_prev = dc_tot * f  (into dc's buffer when we own one)
        dc_prev = np.multiply(dct, f, out=dc) if dc is not None else dct * f
        # df = dc_tot * c_prev * f (1 - f)
        np.subtract(1, f, out=tmp)
        f *= tmp
        f *= c_prev
        f *= dct
        # di = dc_tot i * g (1 - i);  dg = dc_tot i * (1 - g^2)
        np.multiply(dct, i, out=tmp)              # dc_tot i
        np.subtract(1, i, out=i)
        i *= gg
        i *= tmp
        np.multiply(gg, gg, out=gg)
        np.subtract(1, gg, out=gg)
        gg *= tmp
        return None, dc_prev


class GRUCell(_Cell):
    """GRU cell with PyTorch's equations and gate order r, z, n.

    Forward::

        r = s(W_ir x + b_ir + W_hr h + b_hr)          z = s(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h

    Backward, with dh the gradient arriving at h'::

        dn = dh (1 - z) (1 - n^2)          (input-side pre-activation gradient of n)
        dz = dh (h - n) z (1 - z)          dr = dn * (W_hn h + b_hn) * r (1 - r)
        recurrent-side gradient of the n rows: dn * r
        dh_prev = [dr, dz] @ W_h[rz] + (dn * r) @ W_hn + dh * z
    """

    mode = "GRU"
    num_gates = 3

    def gate_scale(self, H, dtype):
        s = np.full(3 * H, 0.5, dtype)
        s[2 * H:] = 1.0                           # n is a tanh gate, applied after r * (...)
        return s

    def input_bias(self, b_ih, b_hh):
        if b_ih is None:
            return None
        H = b_ih.shape[0] // 3
        b = b_ih.copy()
        b[: 2 * H] += b_hh[: 2 * H]               # b_hn stays inside r * (...)
        return b

    def new_aux(self, T, N, H, dtype):
        # hn[t] = W_hn h_{t-1} + b_hn; backward overwrites it with the recurrent-side dn * r.
        return {"hn": np.empty((T, N, H), dtype)}

    def new_workspace(self, N, H, dtype):
        return {"dn": np.empty((N, H), dtype), "tmp": np.empty((N, H), dtype),
                "dh_direct": np.empty((N, H), dtype)}

    def recurrent_parts(self, G, aux, H):
        return [(G[:, :, : 2 * H], slice(0, 2 * H)), (aux["hn"], slice(2 * H, 3 * H))]

    def forward_step(self, g, hp, h_prev, c_prev, h_out, c_out, aux, t, b_hh):
        H = h_prev.shape[1]
        hn = aux["hn"][t]                         # (N, H)
        if b_hh is not None:
            np.add(hp[:, 2 * H:], b_hh[2 * H:], out=hn)
        else:
            hn[...] = hp[:, 2 * H:]
        rz = g[:, : 2 * H]                        # prescaled by 0.5
        rz += hp[:, : 2 * H]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5                                 # r, z
        r, z, n = g[:, :H], g[:, H: 2 * H], g[:, 2 * H:]
        np.multiply(r, hn, out=h_out)             # h_out as scratch
        n += h_out
        np.tanh(n, out=n)
        np.subtract(h_prev, n, out=h_out)
        h_out *= z
        h_out += n                                # h' = n + z (h - n)

    def backward_step(self, dh, dc, g, h_prev, c_prev, c_t, aux, t, ws=None):
        H = h_prev.shape[1]
        if ws is None:
            ws = self.new_workspace(*dh.shape, dh.dtype)
        r, z, n = g[:, :H], g[:, H: 2 * H], g[:, 2 * H:]
        hn = aux["hn"][t]
        dn, tmp, dh_direct = ws["dn"], ws["tmp"], ws["dh_direct"]
        np.multiply(dh, z, out=dh_direct)         # (N, H)
        # dn_pre = dh (1 - z) (1 - n^2)
        np.multiply(n, n, out=dn)
        np.subtract(1, dn, out=dn)
        np.subtract(1, z, out=tmp)
        dn *= tmp
        dn *= dh
        # dz_pre = dh (h - n) z (1 - z)   (tmp holds 1 - z)
        tmp *= dh
        np.subtract(h_prev, n, out=n)             # n no longer needed
        tmp *= n
        np.multiply(tmp, z, out=z)
        # dr_pre = dn * hn * r (1 - r)
        np.subtract(1, r, out=tmp)
        tmp *= hn
        tmp *= dn
        np.multiply(dn, r, out=hn)                # recurrent-side n gradient
        r *= tmp
        n[...] = dn
        return dh_direct, None


def make_cell(mode: str) -> _Cell:
    """Cell object for a PyTorch mode string: 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'."""
    if mode == "LSTM":
        return LSTMCell()
    if mode == "GRU":
        return GRUCell()
    if mode == "RNN_TANH":
        return RNNCell("tanh")
    if mode == "RNN_RELU":
        return RNNCell("relu")
    raise ValueError(f"make_cell: expected mode 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU', got {mode!r}.")
