"""Networks: one encoder shared by the VAE, the contrastive model and the U-Net.

The encoder's parameters carry the same names (``encoder.*``) in all three models, so
pretrained weights transfer to the U-Net by name and shape (:mod:`trainer.nn.transfer`).
Tensors are ``(n, channels, h, w)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from trainer.config import DECODERS


def stage_widths(base_width: int, levels: int, max_width: int) -> list[int]:
    """Return the channel widths of the ``levels + 1`` encoder stages."""
    if base_width < 1 or levels < 1:
        raise ValueError(f"base_width and levels must be >= 1, got {base_width}, {levels}")
    return [min(base_width * 2**i, max_width) for i in range(levels + 1)]


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class Encoder(nn.Module):
    """Convolutional encoder: ``levels`` 2x downsamplings, features of every stage returned.

    Parameters
    ----------
    in_channels : int
        Input channels (2.5D slices).
    base_width, levels, max_width : int
        Width of the first stage, number of downsamplings, channel cap.
    """

    def __init__(self, in_channels: int, base_width: int, levels: int, max_width: int) -> None:
        super().__init__()
        self.widths = stage_widths(base_width, levels, max_width)
        chans = [in_channels, *self.widths]
        pairs = zip(chans[:-1], chans[1:], strict=True)
        self.stages = nn.ModuleList(ConvBlock(a, b) for a, b in pairs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the feature maps of all stages, finest first."""
        feats = []
        for i, stage in enumerate(self.stages):
            if i:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            feats.append(x)
        return feats


class UNet(nn.Module):
    """U-Net with skip connections over :class:`Encoder`; returns logits ``(n, 1, h, w)``.

    Parameters
    ----------
    in_channels, base_width, levels, max_width : int
        As :class:`Encoder`.
    decoder : {'concat', 'additive'}
        ``concat``: upsample, concatenate the skip, two 3x3 convolutions (the classic
        U-Net). ``additive``: a 1x1 convolution to the skip's width, upsample, add the skip
        (as in LinkNet / FPN), two 3x3 convolutions, and a single one at full resolution.
        The full-resolution level holds a quarter of the U-Net's multiply-adds but most of
        its CPU time (memory-bound layers with few channels); ``additive`` makes it cheaper.
    """

    def __init__(
        self, in_channels: int, base_width: int, levels: int, max_width: int,
        decoder: str = "concat",
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.decoder_style = decoder
        self.encoder = Encoder(in_channels, base_width, levels, max_width)
        w = self.encoder.widths
        if decoder == "concat":
            self.up_blocks = nn.ModuleList(
                ConvBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(levels))
            )
        else:
            self.reduce = nn.ModuleList(
                nn.Conv2d(w[i + 1], w[i], 1) for i in reversed(range(levels))
            )
            self.up_blocks = nn.ModuleList(
                ConvBlock(w[i], w[i]) if i else _conv_bn_relu(w[i], w[i])
                for i in reversed(range(levels))
            )
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return lesion logits."""
        feats = self.encoder(x)
        y = feats[-1]
        for k, (block, skip) in enumerate(zip(self.up_blocks, reversed(feats[:-1]), strict=True)):
            if self.decoder_style == "concat":
                y = _upsample(y)
                y = block(torch.cat([y, skip], dim=1))
            else:
                y = block(_upsample(self.reduce[k](y)) + skip)
        return self.head(y)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ProbabilityModel(nn.Module):
    """Wraps a logit model and applies the sigmoid (what is exported)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return probabilities in [0, 1]."""
        return torch.sigmoid(self.net(x))


class MeanProbabilityModel(nn.Module):
    """Averages the sigmoid probabilities of several logit models (an exported ensemble)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        if not nets:
            raise ValueError("an ensemble needs at least one network")
        self.members = nn.ModuleList(ProbabilityModel(net) for net in nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the members' mean probability in [0, 1]."""
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


class VAE(nn.Module):
    """Variational auto-encoder with a spatial latent at the encoder's coarsest stage.

    ``forward`` returns ``(reconstruction, mu, logvar)``; the reconstruction is in [0, 1]
    like the input.
    """

    def __init__(
        self, in_channels: int, base_width: int, levels: int, max_width: int, latent_channels: int
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, base_width, levels, max_width)
        w = self.encoder.widths
        self.to_stats = nn.Conv2d(w[-1], 2 * latent_channels, 1)
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, w[-1], 1)]
        for i in reversed(range(levels)):
            layers += [nn.Upsample(scale_factor=2.0, mode="bilinear"), ConvBlock(w[i + 1], w[i])]
        layers.append(nn.Conv2d(w[0], in_channels, 1))
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the latent mean and log-variance."""
        mu, logvar = self.to_stats(self.encoder(x)[-1]).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample ``mu + sigma * eps`` (differentiable in mu and logvar)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map a latent sample to an image in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample and decode."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterise(mu, logvar)), mu, logvar


class ContrastiveModel(nn.Module):
    """Encoder + global pooling + projection head (SimCLR)."""

    def __init__(
        self, in_channels: int, base_width: int, levels: int, max_width: int, proj_dim: int
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, base_width, levels, max_width)
        w = self.encoder.widths[-1]
        self.projection = nn.Sequential(
            nn.Linear(w, w), nn.ReLU(inplace=True), nn.Linear(w, proj_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return projections ``(n, proj_dim)``."""
        pooled = self.encoder(x)[-1].mean(dim=(2, 3))
        return self.projection(pooled)


MODEL_CLASSES = {"UNet": UNet, "VAE": VAE, "ContrastiveModel": ContrastiveModel}


def build_model(class_name: str, cfg: object) -> nn.Module:
    """Instantiate ``class_name`` from a :class:`trainer.config.TrainConfig`.

    Raises
    ------
    ValueError
        If ``class_name`` is unknown.
    """
    if class_name not in MODEL_CLASSES:
        raise ValueError(f"class_name must be one of {sorted(MODEL_CLASSES)}, got {class_name!r}")
    common = (len(cfg.slice_offsets_mm), cfg.base_width, cfg.levels, cfg.max_width)
    if class_name == "VAE":
        return VAE(*common, cfg.latent_channels)
    if class_name == "ContrastiveModel":
        return ContrastiveModel(*common, cfg.proj_dim)
    return MODEL_CLASSES[class_name](*common, decoder=cfg.decoder)
