"""PyTorch implementation of the ERL-MR sensor reference model and its training step.

Written from ../../../shared/spec/erl-mr.md section 3, for side-by-side performance
comparison with the C++ engine (bench/compare.sh) and checked against the reference
fixtures (bench/pytorch/check_fixtures.py). The module tree uses the released code's
names, so that `state_dict()` keys match the fixtures' `param/*` keys:

    encoder.acc_cnn_layers.features.{0..14}   conv/BN/ReLU/Dropout stack (accelerometer)
    encoder.gyr_cnn_layers.features.{0..14}   same for the gyroscope
    mu1, mu2                                  (1, 16, 1) moduli, initialised to 1
    im                                        Linear(16(T-2) -> 8(T-2)) shared projection
    fusion.fc_out / fc_x / fc_y               fusion layer (spec section 3.2)

The Euler block is computed in the real-pair form the released code uses:
r = mu cos A, p = mu sin A, r' = relu(W r + b), p' = relu(W p + b), theta = atan2(p', r'),
h = [r'; p'].

Step modes (spec section 3.4):
  fused     one forward pass; g1, g2 by torch.autograd.grad on the same graph, then L.backward()
  faithful  three forward passes A, B, C with fresh dropout masks (released code)
  joint     plain joint training: CE on the fused logits only
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

FUSIONS = ("concat", "sum", "film", "gated")
MODES = ("fused", "faithful", "joint")


class CNNLayers(nn.Module):
    """One modality's encoder: `features` is the 15-entry Sequential of the released code."""

    def __init__(self, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, 2), nn.BatchNorm2d(64), nn.ReLU(), nn.Dropout(dropout),   # 0-3
            nn.Conv2d(64, 64, 2), nn.BatchNorm2d(64), nn.ReLU(), nn.Dropout(dropout),  # 4-7
            nn.Conv2d(64, 32, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.Dropout(dropout),  # 8-11
            nn.Conv2d(32, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),                       # 12-14
        )

    def forward(self, x):                      # x: (B, 1, 3, T)
        a = self.features(x)                   # (B, 16, 1, T-2)
        return a.reshape(a.shape[0], 16, -1)   # (B, 16, T-2)


class Encoder(nn.Module):
    def __init__(self, dropout=0.5):
        super().__init__()
        self.acc_cnn_layers = CNNLayers(dropout)
        self.gyr_cnn_layers = CNNLayers(dropout)


class Fusion(nn.Module):
    """Fusion layer of spec section 3.2; `forward` returns (out, out_a, out_g)."""

    def __init__(self, kind, d, num_classes):
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"unknown fusion {kind!r}")
        self.kind = kind
        self.d = d
        if kind in ("concat", "gated"):
            self.fc_out = nn.Linear(2 * d, num_classes)
        elif kind == "sum":
            self.fc_x = nn.Linear(d, num_classes)
            self.fc_y = nn.Linear(d, num_classes)
        else:  # film: F_a for h_a, F_g for h_g (the project's choice, spec 3.2)
            self.fc_x = nn.Linear(d, 2 * d)
            self.fc_y = nn.Linear(d, 2 * d)
            self.fc_out = nn.Linear(2 * d, num_classes)

    def _split_out(self, x, y):
        w, c = self.fc_out.weight, self.fc_out.bias
        out = F.linear(torch.cat((x, y), dim=1), w, c)
        out_a = F.linear(x, w[:, :self.d], c / 2)
        out_g = F.linear(y, w[:, self.d:], c / 2)
        return out, out_a, out_g

    def forward(self, ha, hg):
        if self.kind == "concat":
            return self._split_out(ha, hg)
        if self.kind == "sum":
            la = F.linear(ha, self.fc_x.weight)
            lg = F.linear(hg, self.fc_y.weight)
            ca, cg = self.fc_x.bias, self.fc_y.bias
            return la + ca + lg + cg, la + ca / 2, lg + cg / 2
        if self.kind == "gated":
            return self._split_out(torch.sigmoid(hg) * ha, torch.sigmoid(ha) * hg)
        gamma_a, beta_a = self.fc_x(ha).chunk(2, dim=1)
        gamma_g, beta_g = self.fc_y(hg).chunk(2, dim=1)
        return self._split_out(gamma_g * ha + beta_g, gamma_a * hg + beta_a)


def safe_atan2(p, r):
    """atan2(p, r) with arg(0) = 0 and zero gradient at p = r = 0 (spec 3.1)."""
    zero = (p == 0) & (r == 0)
    r_safe = torch.where(zero, torch.ones_like(r), r)
    return torch.where(zero, torch.zeros_like(p), torch.atan2(p, r_safe))


class ERLMRNet(nn.Module):
    def __init__(self, T=200, num_classes=12, fusion="concat", dropout=0.5):
        super().__init__()
        if T < 3:
            raise ValueError("T must be at least 3")
        self.T = T
        n = 16 * (T - 2)           # flattened encoder output per modality
        self.d = n                 # width of h_m = [r'; p'] (2 * n/2)
        self.dropout_p = dropout
        self.encoder = Encoder(dropout)
        self.mu1 = nn.Parameter(torch.ones(1, 16, 1))
        self.mu2 = nn.Parameter(torch.ones(1, 16, 1))
        self.im = nn.Linear(n, n // 2)
        self.fusion = Fusion(fusion, n, num_classes)

    def set_dropout(self, p):
        self.dropout_p = p
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = p

    def shared_parameters(self):
        """Theta of spec 3.4: both encoders, mu1, mu2 and the shared projection (not fusion)."""
        return (list(self.encoder.parameters()) + [self.mu1, self.mu2]
                + list(self.im.parameters()))

    def _euler(self, a, mu):
        r = (mu * torch.cos(a)).flatten(1)
        p = (mu * torch.sin(a)).flatten(1)
        if self.training and self.dropout_p > 0:
            r = F.dropout(r, self.dropout_p, True)   # independent masks for Re and Im
            p = F.dropout(p, self.dropout_p, True)
        r = F.relu(self.im(r))
        p = F.relu(self.im(p))
        return safe_atan2(p, r), torch.cat((r, p), dim=1)

    def forward(self, x1, x2):
        """Returns (out, out_a, out_g, theta_a, theta_g)."""
        theta_a, ha = self._euler(self.encoder.acc_cnn_layers(x1), self.mu1)
        theta_g, hg = self._euler(self.encoder.gyr_cnn_layers(x2), self.mu2)
        out, out_a, out_g = self.fusion(ha, hg)
        return out, out_a, out_g, theta_a, theta_g


def phase_loss(theta_a, theta_g):
    """L_ph = 1 - mean_j cos(theta_a[:, j], theta_g[:, j]), cosine down the batch (spec 3.3)."""
    return 1.0 - F.cosine_similarity(theta_a, theta_g, dim=0, eps=1e-8).mean()


def _flat_dot(xs, ys):
    return sum((x * y).sum() for x, y in zip(xs, ys))


def min_norm_gamma(g1, l1, g2, l2):
    """Two-task min-norm weight of spec 3.4 on normalised gradients g_k / (L_k ||g_k||).

    g1, g2 are lists of tensors (None = zero); l1, l2 the loss values (tensors).
    Returns a Python float.
    """
    g1 = [torch.zeros(()) if g is None else g.detach() for g in g1]
    g2 = [torch.zeros(()) if g is None else g.detach() for g in g2]
    n11 = _flat_dot(g1, g1)
    n22 = _flat_dot(g2, g2)
    n12 = _flat_dot(g1, g2)
    s1 = float(l1) * math.sqrt(float(n11))
    s2 = float(l2) * math.sqrt(float(n22))
    v11 = float(n11) / (s1 * s1)
    v22 = float(n22) / (s2 * s2)
    v12 = float(n12) / (s1 * s2)
    if v12 >= v11:
        return 0.999
    if v12 >= v22:
        return 0.001
    return (v22 - v12) / (v11 + v22 - 2.0 * v12)


def train_step(model, x1, x2, y, mode="fused", optimizer=None):
    """One ERL-MR training step. Leaves gradients in .grad (set, not accumulated) and,
    if `optimizer` is given, applies its update. Returns a dict of detached results."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    res = {}
    if mode == "joint":
        out, out_a, out_g, ta, tg = model(x1, x2)
        loss = F.cross_entropy(out, y)
        loss.backward()
        res.update(out=out, loss=loss, loss_ce=loss)
    elif mode == "fused":
        theta = model.shared_parameters()
        out, out_a, out_g, ta, tg = model(x1, x2)
        ce = F.cross_entropy(out, y)
        lph = phase_loss(ta, tg)
        luni = F.cross_entropy(out_a, y) + F.cross_entropy(out_g, y)
        g1 = torch.autograd.grad(ce, theta, retain_graph=True, allow_unused=True)
        g2 = torch.autograd.grad(2.0 * lph, theta, retain_graph=True, allow_unused=True)
        gamma = min_norm_gamma(g1, ce, g2, 2.0 * lph)
        loss = gamma * ce + (1.0 - gamma) * (lph + luni)
        loss.backward()
        res.update(out=out, out_a=out_a, out_g=out_g, theta_a=ta, theta_g=tg, loss_ce=ce,
                   loss_phase=lph, loss_uni=luni, gamma=gamma, loss=loss)
    else:  # faithful: passes A, B, C with fresh dropout masks
        theta = model.shared_parameters()
        _, out_a, out_g, _, _ = model(x1, x2)                          # pass A
        luni = F.cross_entropy(out_a, y) + F.cross_entropy(out_g, y)
        out_b, _, _, _, _ = model(x1, x2)                               # pass B
        ce_b = F.cross_entropy(out_b, y)
        g1 = torch.autograd.grad(ce_b, theta, allow_unused=True)
        out, _, _, ta, tg = model(x1, x2)                               # pass C
        ce = F.cross_entropy(out, y)
        lph = phase_loss(ta, tg)
        g2 = torch.autograd.grad(2.0 * lph, theta, retain_graph=True, allow_unused=True)
        gamma = min_norm_gamma(g1, ce_b, g2, 2.0 * lph)
        loss = gamma * ce + (1.0 - gamma) * (lph + luni)
        loss.backward()                                                 # through A and C
        res.update(out=out, out_a=out_a, out_g=out_g, theta_a=ta, theta_g=tg, loss_ce=ce,
                   loss_phase=lph, loss_uni=luni, gamma=gamma, loss=loss)
    if optimizer is not None:
        optimizer.step()
    return {k: (v.detach() if torch.is_tensor(v) else v) for k, v in res.items()}


def make_optimizer(model):
    """The released training defaults (spec 3.5)."""
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
