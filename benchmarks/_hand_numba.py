"""The MLP training step written by hand as Numba loops: the benchmark's practical floor.

What a person would write for one model in plain Numba (no ``fastmath``, so no FMA and
no reassociation, as gradspec's kernels): batched per layer, every inner loop over a
layer's units or inputs, contiguous and free of sums across its iterations, so it
vectorises. It computes the workload's step (forward, SVM or MSE loss with the L2 term,
backward, SGD), agreeing with gradspec to rounding, not bit for bit: it sums in its own
order. It is a reference, not a backend.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["ACTIVATION_CODES", "hand_step"]

#: activation name -> the code :func:`hand_step` reads
ACTIVATION_CODES = {"linear": 0, "relu": 1, "tanh": 2}


@numba.njit(
    "float64(float64[:, ::1], float64[::1], float64[::1], float64[::1], int64[::1], int64[::1], int64[::1], "
    "boolean, float64, float64, float64[:, ::1], float64[:, ::1], float64[:, ::1], float64[::1], float64[::1])",
    cache=True,
    error_model="numpy",
)
def hand_step(X, y, W, b, offsets, sizes, acts, svm, alpha, lr, h, z, dh, dW, db):  # type: ignore[no-untyped-def]
    """One SGD step, in place on ``W`` (layer ``l``'s ``(fan_out, fan_in)`` block, row by row,
    from ``offsets[l]``) and ``b`` (the layers' biases one after another); returns the loss
    before the update. ``acts``: per layer, an :data:`ACTIVATION_CODES` code.

    ``h``: room for every layer's inputs and outputs, ``(n, sum(sizes))``; ``z`` the same for
    pre-activations; ``dh`` ``(n, max(sizes))`` twice; ``dW``, ``db`` like ``W``, ``b``.
    """
    n = X.shape[0]
    layers = sizes.shape[0] - 1
    columns = np.zeros(layers + 2, np.int64)  # where each layer's units start in a row of h
    for layer in range(layers + 1):
        columns[layer + 1] = columns[layer] + sizes[layer]
    bias = np.zeros(layers + 1, np.int64)
    for layer in range(layers):
        bias[layer + 1] = bias[layer] + sizes[layer + 1]
    for s in range(n):
        h[s, : sizes[0]] = X[s]
    # forward, vectorised across the layer's units: z[s, :] = b + sum over k of W[:, k] * h[s, k]
    for layer in range(layers):
        fan_in, fan_out, w0 = sizes[layer], sizes[layer + 1], offsets[layer]
        c_in, c_out, b0 = columns[layer], columns[layer + 1], bias[layer]
        weights_t = W[w0 : w0 + fan_in * fan_out].reshape(fan_out, fan_in).T.copy()  # row k: W[:, k]
        biases = b[b0 : b0 + fan_out]
        for s in range(n):
            inputs, zs, outputs = (
                h[s, c_in : c_in + fan_in],
                z[s, c_out : c_out + fan_out],
                h[s, c_out : c_out + fan_out],
            )
            for j in range(fan_out):
                zs[j] = biases[j]
            for k in range(fan_in):
                x, column = inputs[k], weights_t[k]
                for j in range(fan_out):
                    zs[j] += column[j] * x
            for j in range(fan_out):
                v = zs[j]
                outputs[j] = (max(v, 0.0) if acts[layer] == 1 else math.tanh(v)) if acts[layer] else v
    # loss, and its derivative by each score
    last = columns[layers]
    loss = 0.0
    for s in range(n):
        score = h[s, last]
        if svm:
            margin = 1.0 - y[s] * score
            loss += max(margin, 0.0)
            dh[s, 0] = -y[s] / n if margin > 0.0 else 0.0
        else:
            loss += (score - y[s]) ** 2
            dh[s, 0] = 2.0 * (score - y[s]) / n
    loss /= n
    if alpha:
        squares = 0.0
        for i in range(W.shape[0]):
            squares += W[i] * W[i]
        for i in range(b.shape[0]):
            squares += b[i] * b[i]
        loss += alpha * squares
    # backward, layer by layer: every inner loop runs across units or inputs, never sums them
    for i in range(W.shape[0]):
        dW[i] = 2.0 * alpha * W[i]
    for i in range(b.shape[0]):
        db[i] = 2.0 * alpha * b[i]
    for layer in range(layers - 1, -1, -1):
        fan_in, fan_out, w0 = sizes[layer], sizes[layer + 1], offsets[layer]
        c_in, c_out, b0 = columns[layer], columns[layer + 1], bias[layer]
        weights, grads = W[w0 : w0 + fan_in * fan_out], dW[w0 : w0 + fan_in * fan_out]
        bias_grads = db[b0 : b0 + fan_out]
        for s in range(n):
            inputs, zs, outputs = (
                h[s, c_in : c_in + fan_in],
                z[s, c_out : c_out + fan_out],
                h[s, c_out : c_out + fan_out],
            )
            dz, below = dh[s, :fan_out], dh[s, fan_out : fan_out + fan_in]
            for j in range(fan_out):
                g = dz[j]
                if acts[layer] == 1:
                    g = g if zs[j] > 0.0 else 0.0
                elif acts[layer] == 2:
                    g = g * (1.0 - outputs[j] ** 2)
                dz[j] = g
                bias_grads[j] += g
            for k in range(fan_in):
                below[k] = 0.0
            for j in range(fan_out):
                g = dz[j]
                row, grad_row = weights[j * fan_in : (j + 1) * fan_in], grads[j * fan_in : (j + 1) * fan_in]
                for k in range(fan_in):
                    grad_row[k] += g * inputs[k]
                for k in range(fan_in):
                    below[k] += g * row[k]
            dh[s, :fan_in] = below.copy()
    for i in range(W.shape[0]):
        W[i] -= lr * dW[i]
    for i in range(b.shape[0]):
        b[i] -= lr * db[i]
    return loss
