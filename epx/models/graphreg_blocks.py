"""Building blocks shared by Epi-GraphReg and its Epi-CNN control (Karbalayghareh et al. 2022).

``EpiEncoder`` turns a window of 100 bp histone-mark bins into 5 kb node embeddings:
three Conv1d+BN+ReLU stages pooled by 2, 5 and 5 (50 bins of 100 bp = one 5 kb node), so
a 6 Mb window of 60,000 bins becomes 1,200 nodes. ``CountHead`` maps node embeddings to
non-negative predicted counts with a 1x1 conv 64 + BN + ReLU and a 1x1 conv to one
channel, followed by the output link named in ``OUTPUT_LINKS`` (``exp`` as in the paper,
or ``softplus``, which grows linearly and so cannot overflow on large logits).

``LAYER_ORDERS`` names how a conv stage is arranged: ``epx`` (the default: Conv -> BN -> ReLU,
PyTorch's BatchNorm eps 1e-5 and momentum 0.1) or ``published`` (the authors' Keras code:
Conv -> ReLU -> BN, Keras's BatchNorm eps 1e-3 and momentum 0.99, i.e. 0.01 in PyTorch's
convention), so weights trained by the original code compute the same thing here.
``CountHead(hidden=0)`` is the published Epi-CNN's head: one 1x1 conv to the count, no hidden layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from epx.models.fast_layers import Dropout, MaxPool1d, PhaseMax, conv_by_phase

BINS_PER_NODE = 50  # 2 * 5 * 5: the product of the encoder's three pooling sizes

OUTPUT_LINKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "exp": torch.exp,
    "softplus": F.softplus,
}


def output_link(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Look up a count link function by name, failing with the valid names."""
    if name not in OUTPUT_LINKS:
        raise ValueError(f"unknown output {name!r}; choose one of {sorted(OUTPUT_LINKS)}")
    return OUTPUT_LINKS[name]


@dataclass(frozen=True)
class LayerOrder:
    """Where the activation sits relative to BatchNorm, and the BatchNorm's constants."""

    activation_first: bool  # Conv -> ReLU -> BN (the Keras code) instead of Conv -> BN -> ReLU
    eps: float
    momentum: float  # PyTorch's convention: the weight of the new batch statistic

    def norm(self, channels: int) -> nn.BatchNorm1d:
        return nn.BatchNorm1d(channels, eps=self.eps, momentum=self.momentum)

    def stage(self, conv: nn.Module, channels: int) -> nn.Sequential:
        """conv -> BN -> ReLU, or conv -> ReLU -> BN."""
        if self.activation_first:
            return nn.Sequential(conv, nn.ReLU(), self.norm(channels))
        return nn.Sequential(conv, self.norm(channels), nn.ReLU())


LAYER_ORDERS: dict[str, LayerOrder] = {
    "epx": LayerOrder(activation_first=False, eps=1e-5, momentum=0.1),
    # Keras BatchNormalization defaults: epsilon 1e-3, momentum 0.99 (= 1 - 0.01)
    "published": LayerOrder(activation_first=True, eps=1e-3, momentum=0.01),
}


def layer_order(name: str) -> LayerOrder:
    """Look up a layer order by name, failing with the valid names."""
    if name not in LAYER_ORDERS:
        raise ValueError(f"unknown layer_order {name!r}; choose one of {sorted(LAYER_ORDERS)}")
    return LAYER_ORDERS[name]


def _conv_bn_relu(*, in_channels: int, out_channels: int, kernel_size: int, order: str = "epx") -> nn.Sequential:
    conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding="same")
    return layer_order(order).stage(conv, out_channels)


class EpiEncoder(nn.Module):
    """Histone-mark bins -> node embeddings, one node per 50 bins (5 kb at 100 bp bins)."""

    def __init__(self, *, n_marks: int = 7, d: int = 128, dropout: float = 0.5, layer_order: str = "epx") -> None:
        super().__init__()
        if n_marks < 1 or d < 1:
            raise ValueError(f"n_marks and d must be positive, got n_marks={n_marks}, d={d}")
        self.n_marks = n_marks
        self.d = d
        self.layer_order = layer_order
        self.layers = nn.Sequential(
            _conv_bn_relu(in_channels=n_marks, out_channels=d, kernel_size=25, order=layer_order),
            MaxPool1d(2),
            Dropout(dropout),
            _conv_bn_relu(in_channels=d, out_channels=d, kernel_size=3, order=layer_order),
            MaxPool1d(5),
            Dropout(dropout),
            _conv_bn_relu(in_channels=d, out_channels=d, kernel_size=3, order=layer_order),
            MaxPool1d(5),
        )

    def extra_repr(self) -> str:
        return f"n_marks={self.n_marks}, d={self.d}, layer_order={self.layer_order!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, M, L) with M = n_marks and L a multiple of 50 -> (B, d, L // 50)."""
        if x.dim() != 3 or x.shape[1] != self.n_marks or x.shape[2] % BINS_PER_NODE:
            raise ValueError(
                f"expected x of shape (B, {self.n_marks}, L) with L a multiple of "
                f"{BINS_PER_NODE} bins, got {tuple(x.shape)}; check the model's n_marks "
                "against the dataset's mark list and the window length"
            )
        if torch.compiler.is_compiling() or x.device.type != "cpu":
            return self._stock_forward(x)
        h = x
        modules = list(self.layers)
        first_stage = True
        for i, module in enumerate(modules):
            if isinstance(module, nn.Sequential):  # a stage; the pool after it is modules[i + 1]
                pool = modules[i + 1]
                if first_stage and h.shape[-1] % pool.kernel_size == 0:
                    h = self._phased_stage(module, pool, h)
                else:
                    h = self._stage(module, pool, h)
                first_stage = False
            elif not isinstance(module, nn.MaxPool1d):  # pools run inside their stage
                h = module(h)
        return h

    def _stock_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layers in order, but for ReLU after the max pool it precedes (they commute)."""
        if LAYER_ORDERS[self.layer_order].activation_first:
            return self.layers(x)
        h, activation = x, None
        for module in self.layers:
            if isinstance(module, nn.Sequential):  # a stage: conv, BN, ReLU
                conv, norm, activation = module
                h = norm(conv(h))
            elif isinstance(module, nn.MaxPool1d):
                h = activation(module(h))
            else:
                h = module(h)
        return h

    def _stage(self, stage: nn.Sequential, pool: nn.MaxPool1d, h: torch.Tensor) -> torch.Tensor:
        """One stage and its pool, (B, C_in, L) -> (B, C, L // k). Conv -> BN -> ReLU -> pool runs as
        Conv -> BN -> pool -> ReLU (ReLU is monotone, so it commutes with max pooling: same values,
        same gradients, on a k-th of the elements); Conv -> ReLU -> BN -> pool takes its ReLU in
        place on the conv's output, which the conv's backward does not need."""
        if LAYER_ORDERS[self.layer_order].activation_first:
            conv, _, norm = stage
            return pool(norm(torch.relu_(conv(h))))
        conv, norm, _ = stage
        return torch.relu(pool(norm(conv(h))))

    def _phased_stage(self, stage: nn.Sequential, pool: nn.MaxPool1d, h: torch.Tensor) -> torch.Tensor:
        """``_stage`` with the conv's output laid out by pooling window (``fast_layers.conv_by_phase``):
        the BatchNorm sees the same elements and the pool is a max of contiguous planes."""
        k = pool.kernel_size
        conv = stage[0]
        activation_first = LAYER_ORDERS[self.layer_order].activation_first
        planes = conv_by_phase(conv, h, k, relu=activation_first)  # (B, C, k, L // k)
        batch, channels, _, n = planes.shape
        if activation_first:
            _, _, norm = stage
            return PhaseMax.apply(norm(planes.reshape(batch, channels, k * n)).view(batch, channels, k, n))
        _, norm, _ = stage
        return torch.relu(PhaseMax.apply(norm(planes.view(batch, channels, k * n)).view(batch, channels, k, n)))


class CountHead(nn.Module):
    """Node embeddings -> one non-negative predicted count per node.

    ``hidden``: the width of the 1x1 conv stage before the count (0: none, the count comes
    straight from the embeddings, as in the published Epi-CNN); ``layer_order`` arranges that stage.
    """

    def __init__(self, *, in_channels: int, hidden: int = 64, output: str = "exp", layer_order: str = "epx") -> None:
        super().__init__()
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        self.link = output_link(output)
        self.in_channels, self.hidden, self.output, self.layer_order = in_channels, hidden, output, layer_order
        stage = [*_conv_bn_relu(in_channels=in_channels, out_channels=hidden, kernel_size=1, order=layer_order)] if hidden else []
        self.layers = nn.Sequential(*stage, nn.Conv1d(hidden or in_channels, 1, 1))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, hidden={self.hidden}, output={self.output!r}, layer_order={self.layer_order!r}"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, C, N) -> (B, N) predicted counts >= 0."""
        return self.link(self.layers(h).squeeze(1))
