"""Chapter 1: learner-style solutions and wrong answers for the shared harness."""

import torch
import torch.nn.functional as F

from tests.exercises.registry import Exercise

# --- one GRU step ------------------------------------------------------------------------------

def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[-1]
    W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h


def gru_step_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    with torch.random.fork_rng(devices=[]):  # the cell's initial weights are overwritten
        cell = torch.nn.GRUCell(x.shape[1], h.shape[1], dtype=x.dtype)
    with torch.no_grad():
        for p, w in zip(cell.parameters(), (W_ih, W_hh, b_ih, b_hh), strict=True):
            p.copy_(w)
    return cell(x, h).detach()


def gru_parts(x, h, W_ih, W_hh, b_ih, b_hh):
    gi = F.linear(x, W_ih, b_ih)
    gh = F.linear(h, W_hh, b_hh)
    H = h.shape[-1]
    return gi.split(H, dim=-1), gh.split(H, dim=-1)


def gru_swapped(x, h, *w):
    (i_z, i_r, i_n), (h_z, h_r, h_n) = gru_parts(x, h, *w)  # wrong order: z first
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


def gru_z_on_new(x, h, *w):
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gru_parts(x, h, *w)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return z * torch.tanh(i_n + r * h_n) + (1 - z) * h


def gru_reset_first(x, h, W_ih, W_hh, b_ih, b_hh):
    (i_r, i_z, i_n), (h_r, h_z, _) = gru_parts(x, h, W_ih, W_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    H = h.shape[-1]
    n = torch.tanh(i_n + F.linear(r * h, W_hh[2 * H:], b_hh[2 * H:]))
    return (1 - z) * n + z * h


def gru_no_reset(x, h, *w):
    (_, i_z, i_n), (_, h_z, h_n) = gru_parts(x, h, *w)
    z = torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + h_n) + z * h


def gru_sigmoid_n(x, h, *w):
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gru_parts(x, h, *w)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.sigmoid(i_n + r * h_n) + z * h


def gru_tanh_gates(x, h, *w):
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gru_parts(x, h, *w)
    r, z = torch.tanh(i_r + h_r), torch.tanh(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


def gru_no_biases(x, h, W_ih, W_hh, b_ih, b_hh):
    i_r, i_z, i_n = (x @ W_ih.T).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T).chunk(3, dim=1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


def gru_no_hidden_bias(x, h, W_ih, W_hh, b_ih, b_hh):
    return gru_step(x, h, W_ih, W_hh, b_ih, torch.zeros_like(b_hh))


def gru_b_hn_outside(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[-1]
    gi = F.linear(x, W_ih, b_ih)
    gh = F.linear(h, W_hh)  # the hidden biases are added below, one by one
    r = torch.sigmoid(gi[:, :H] + gh[:, :H] + b_hh[:H])
    z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H] + b_hh[H:2 * H])
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:] + b_hh[2 * H:])
    return (1 - z) * n + z * h


def gru_returns_candidate(x, h, *w):
    (i_r, _, i_n), (h_r, _, h_n) = gru_parts(x, h, *w)
    return torch.tanh(i_n + torch.sigmoid(i_r + h_r) * h_n)


# --- Bahdanau context --------------------------------------------------------------------------

def bahdanau_context(s_prev, memory, memory_mask, W_q, W_k, v):
    hidden = torch.tanh((s_prev @ W_q.T)[:, None, :] + memory @ W_k.T)  # (B, S, A)
    e = hidden @ v  # (B, S)
    e = e.masked_fill(~memory_mask, float("-inf"))
    alpha = torch.softmax(e, dim=-1)
    context = torch.einsum("bs,bsh->bh", alpha, memory)
    return context, alpha


def scores_of(s_prev, memory, W_q, W_k, v, act=torch.tanh):
    return act(F.linear(s_prev, W_q)[:, None] + F.linear(memory, W_k)) @ v  # (B, S)


def ctx_no_mask(s_prev, memory, mask, W_q, W_k, v):
    a = F.softmax(scores_of(s_prev, memory, W_q, W_k, v), dim=1)
    return torch.bmm(a[:, None], memory)[:, 0], a


def ctx_mask_after(s_prev, memory, mask, W_q, W_k, v):
    a = F.softmax(scores_of(s_prev, memory, W_q, W_k, v), dim=-1) * mask
    return torch.bmm(a[:, None], memory)[:, 0], a


def ctx_wrong_axis(s_prev, memory, mask, W_q, W_k, v):
    e = torch.where(mask, scores_of(s_prev, memory, W_q, W_k, v), -torch.inf)
    a = torch.nan_to_num(F.softmax(e, dim=0))
    return torch.bmm(a[:, None], memory)[:, 0], a


def ctx_raw_scores(s_prev, memory, mask, W_q, W_k, v):
    e = scores_of(s_prev, memory, W_q, W_k, v) * mask
    return torch.einsum("bs,bsh->bh", e, memory), e


def ctx_mean(s_prev, memory, mask, W_q, W_k, v):
    a = mask.to(memory.dtype) / mask.sum(1, keepdim=True)
    return (a[..., None] * memory).sum(1), a


def ctx_projected(s_prev, memory, mask, W_q, W_k, v):
    e = torch.where(mask, scores_of(s_prev, memory, W_q, W_k, v), -torch.inf)
    a = F.softmax(e, dim=-1)
    return torch.einsum("bs,bsa->ba", a, F.linear(memory, W_k)), a


def ctx_swapped_weights(s_prev, memory, mask, W_q, W_k, v):
    return bahdanau_context(s_prev, memory, mask, W_k, W_q, v)


def ctx_no_tanh(s_prev, memory, mask, W_q, W_k, v):
    e = scores_of(s_prev, memory, W_q, W_k, v, act=lambda t: t)
    a = F.softmax(e.masked_fill(mask.logical_not(), -torch.inf), dim=-1)
    return (a.unsqueeze(-1) * memory).sum(dim=1), a


def ctx_inverted(s_prev, memory, mask, W_q, W_k, v):
    e = scores_of(s_prev, memory, W_q, W_k, v).masked_fill(mask, -torch.inf)  # mask = padding?
    empty = mask.all(dim=-1, keepdim=True)
    a = F.softmax(e.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)
    return (a.unsqueeze(-1) * memory).sum(dim=1), a


def ctx_zero_fill(s_prev, memory, mask, W_q, W_k, v):
    a = F.softmax(scores_of(s_prev, memory, W_q, W_k, v) * mask, dim=-1)
    return (a.unsqueeze(-1) * memory).sum(dim=1), a


def ctx_unsqueezed(s_prev, memory, mask, W_q, W_k, v):
    _, a = bahdanau_context(s_prev, memory, mask, W_q, W_k, v)
    return torch.bmm(a.unsqueeze(1), memory), a  # (B, 1, H)


# --- reversal alignment ------------------------------------------------------------------------

def reversal_alignment(n):
    a = torch.zeros(n, n, dtype=torch.float64)
    for t in range(n):
        a[t, n - 1 - t] = 1.0
    return a


def reversal_alignment_float32(n):
    return torch.eye(n).flip(1)  # torch's default float32: accepted


def align_copy(n):
    return torch.eye(n, dtype=torch.float64)


def align_off_by_one(n):
    return torch.stack([F.one_hot(torch.tensor((n - t) % n), n) for t in range(n)]).double()


def align_uniform(n):
    return torch.ones(n, n, dtype=torch.float64) / n


def align_bool(n):
    return torch.eye(n, dtype=torch.bool).flip(1)


def align_long(n):
    return torch.eye(n, dtype=torch.long).flip(1)


def align_indices(n):
    return torch.tensor([n - 1 - t for t in range(n)])


EXERCISES = [
    Exercise("ch01", "gru_step", 4, (gru_step, gru_step_cell), (
        (gru_swapped, "the reset and update gates are swapped"),
        (gru_z_on_new, "z and 1 - z are exchanged"),
        (gru_reset_first, "the reset gate multiplies h before the matrix product"),
        (gru_no_reset, "the reset gate is never applied"),
        (gru_sigmoid_n, "the candidate uses a sigmoid"),
        (gru_tanh_gates, "the gates use tanh instead of the sigmoid"),
        (gru_no_biases, "a bias is missing"),
        (gru_no_hidden_bias, "a bias is missing"),
        (gru_b_hn_outside, "b_hn is added outside the reset gate"),
        (gru_returns_candidate, "returned the candidate n instead of the new state"),
    )),
    Exercise("ch01", "bahdanau_context", 5, (bahdanau_context,), (
        (ctx_no_mask, "the padding mask is ignored"),
        (ctx_mask_after, "the mask is applied after the softmax"),
        (ctx_wrong_axis, "softmax over the wrong axis"),
        (ctx_raw_scores, "returned the raw scores e instead of the weights alpha"),
        (ctx_mean, "the context is a plain average of the encoder outputs"),
        (ctx_projected, "the context averages the projected keys W_k h_j"),
        (ctx_swapped_weights, "W_q and W_k are swapped"),
        (ctx_no_tanh, "tanh is missing"),
        (ctx_inverted, "mask polarity is inverted"),
        (ctx_zero_fill, "masked scores were set to 0 rather than -inf"),
        (ctx_unsqueezed, "a singleton axis was left in"),
    )),
    Exercise("ch01", "reversal_alignment", 4, (reversal_alignment, reversal_alignment_float32), (
        (align_copy, "this is the copy task's alignment"),
        (align_off_by_one, "the anti-diagonal is off by one"),
        (align_uniform, "uniform weights"),
        (align_bool, "the alignment is not a float tensor"),
        (align_long, "the alignment is not a float tensor"),
        (align_indices, "returned the source positions instead of the weight matrix"),
    )),
]
