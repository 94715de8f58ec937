"""SonoNet-16 (Baumgartner et al., IEEE TMI 2017, arXiv:1612.05601): a VGG-like greyscale plane detector.

Three registered variants share one feature extractor (``backbone``):

- ``sononet16_native``: the original network and its 14 outputs (:data:`SONONET_CLASSES`).
- ``sononet16_planes``: the original network plus :class:`PlaneMappingHead`, which maps the 14
  outputs onto the FETAL_PLANES_DB planes by log-sum-exp of member logits (so each mapped
  probability is exactly the sum of its members' probabilities). ``Maternal cervix`` has no SonoNet
  counterpart and is not covered (:data:`PLANES_NOT_COVERED`). SonoNet's own 14-plane prediction stays
  available from the same model through :meth:`SonoNetClassifier.native_logits`.
- ``sononet16``: SonoNet features with a new head for ``num_classes`` (fine-tuning), either the
  adaptation-style 1x1-convolution head (``head="adaptation"``, default) or global average pooling
  and one linear layer (``head="linear"``, a linear probe on frozen features).

Input: 224 x 288 (H x W) greyscale, standardised per image and multiplied by 255 (:data:`SONONET_PREPROCESS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError, UnsupportedError
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.registry import register_model
from fetalscope.models.spec import ModelSpec
from fetalscope.models.weights.sononet_npz import (
    SONONET16_NPZ,
    SONONET_BN_EPS,
    ConvBNWeights,
    assign_conv_bn,
    read_sononet16_npz,
)

SONONET_CLASSES: tuple[str, ...] = (
    "3VV",
    "4CH",
    "Abdominal",
    "Background",
    "Brain (Cb.)",
    "Brain (Tv.)",
    "Femur",
    "Kidneys",
    "Lips",
    "LVOT",
    "Profile",
    "RVOT",
    "Spine (cor.)",
    "Spine (sag.)",
)

# which SonoNet outputs make up each FETAL_PLANES_DB plane
SONONET_TO_PLANES: dict[str, tuple[str, ...]] = {
    "Fetal abdomen": ("Abdominal",),
    "Fetal brain": ("Brain (Cb.)", "Brain (Tv.)"),
    "Fetal femur": ("Femur",),
    "Fetal thorax": ("3VV", "4CH", "LVOT", "RVOT"),
    "Other": ("Background", "Kidneys", "Lips", "Profile", "Spine (cor.)", "Spine (sag.)"),
}
PLANES_COVERED: tuple[str, ...] = tuple(c for c in PLANE_CLASSES if c in SONONET_TO_PLANES)
PLANES_NOT_COVERED: tuple[str, ...] = tuple(c for c in PLANE_CLASSES if c not in SONONET_TO_PLANES)

FEATURE_STAGES: tuple[tuple[int, ...], ...] = (
    (16, 16), (32, 32), (64, 64, 64), (128, 128, 128), (128, 128, 128)
)
ADAPTATION_CHANNELS = 64
FEATURE_CHANNELS = FEATURE_STAGES[-1][-1]

SONONET_PREPROCESS = PreprocessConfig(
    input_size=(224, 288),
    channels=1,
    normalisation="per_image_standardise",
    mean=(0.0,),
    std=(1.0,),
    scale=255.0,
    crop_sector=True,
)

_BASE_WEIGHTS = "SonoNet-16 (Baumgartner et al. 2017, arXiv:1612.05601), shared/weights/" + SONONET16_NPZ
_HINT = (
    f"Put SonoNet16.npz at <shared>/weights/{SONONET16_NPZ} (upstream baumgach/SonoNet-weights) and set "
    "FETALSCOPE_SHARED to <shared>, or build with pretrained=False."
)
_NONMEMBER = -1.0e4  # added to non-member logits before log-sum-exp: exp() of it is exactly 0 in float32


class ConvBNReLU(nn.Sequential):
    """3x3 (or 1x1) convolution without bias, BatchNorm (eps 1e-4) and optionally ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout, eps=SONONET_BN_EPS),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return self[0]  # type: ignore[return-value]

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self[1]  # type: ignore[return-value]


class SonoNetFeatures(nn.Module):
    """The five convolution stages; stages 2-5 start with 2x2 max pooling.

    Output: ``B x 128 x H/16 x W/16``.
    """

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        cin = in_channels
        for i, widths in enumerate(FEATURE_STAGES, start=1):
            layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if i > 1 else []
            for cout in widths:
                layers.append(ConvBNReLU(cin, cout))
                cin = cout
            self.add_module(f"stage{i}", nn.Sequential(*layers))

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"stage{i}") for i in range(1, len(FEATURE_STAGES) + 1)]

    def conv_layers(self) -> list[ConvBNReLU]:
        return [m for stage in self.stages() for m in stage if isinstance(m, ConvBNReLU)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages():
            x = stage(x)
        return x


class AdaptationHead(nn.Module):
    """SonoNet's head: 1x1 conv 128->64 + BN + ReLU, 1x1 conv 64->C, then the spatial mean -> ``B x C``.

    ``final_bn=True`` is the original (BatchNorm on the class maps, no bias); a new head for
    fine-tuning uses a plain biased convolution instead (``final_bn=False``).
    """

    def __init__(self, num_classes: int, in_channels: int = FEATURE_CHANNELS, final_bn: bool = True) -> None:
        super().__init__()
        self.adapt = ConvBNReLU(in_channels, ADAPTATION_CHANNELS, kernel=1)
        if final_bn:
            self.classify: nn.Module = ConvBNReLU(ADAPTATION_CHANNELS, num_classes, kernel=1, relu=False)
        else:
            self.classify = nn.Conv2d(ADAPTATION_CHANNELS, num_classes, 1, bias=True)

    def class_maps(self, features: torch.Tensor) -> torch.Tensor:
        """Per-location class scores ``B x C x h x w`` (their spatial mean is the logit)."""
        return self.classify(self.adapt(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.class_maps(features).mean(dim=(2, 3))


class LinearProbeHead(nn.Module):
    """Global average pooling of the features and one linear layer (a logistic-regression probe)."""

    def __init__(self, num_classes: int, in_channels: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features.mean(dim=(2, 3)))


class PlaneMappingHead(nn.Module):
    """Map SonoNet's 14 logits ``z`` onto grouped classes: ``out_c = logsumexp_{k in c}(z_k / T) + b_c``.

    With ``b = 0``, ``softmax(out)_c`` equals the sum over the members of ``softmax(z / T)``: grouping
    never invents or loses probability. ``T`` (one temperature for all 14 logits, stored as
    ``log_temperature``) and ``b`` (``bias``, per output class) are identity by default and are
    fitted by :meth:`fit` on held-apart real images.
    """

    def __init__(self, groups: dict[str, tuple[str, ...]] | None = None,
                 native_classes: tuple[str, ...] = SONONET_CLASSES) -> None:
        super().__init__()
        groups = dict(SONONET_TO_PLANES if groups is None else groups)
        self.native_classes = tuple(native_classes)
        self.classes = tuple(groups)
        offset = torch.full((len(self.classes), len(self.native_classes)), _NONMEMBER)
        for i, cls in enumerate(self.classes):
            if not groups[cls]:
                raise BadInputError(f"plane group '{cls}' has no SonoNet members")
            for member in groups[cls]:
                if member not in self.native_classes:
                    raise BadInputError(
                        f"'{member}' (group '{cls}') is not a SonoNet class: {self.native_classes}"
                    )
                offset[i, self.native_classes.index(member)] = 0.0
        if (offset == 0).sum(0).max() > 1:
            raise BadInputError("a SonoNet class belongs to more than one plane group")
        self.register_buffer("offset", offset)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(len(self.classes)))

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    def groups(self) -> dict[str, tuple[str, ...]]:
        return {c: tuple(n for j, n in enumerate(self.native_classes) if self.offset[i, j] == 0)
                for i, c in enumerate(self.classes)}

    def scaled(self, native_logits: torch.Tensor) -> torch.Tensor:
        """SonoNet logits divided by the temperature."""
        return native_logits / self.log_temperature.exp()

    def forward(self, native_logits: torch.Tensor) -> torch.Tensor:
        x = self.scaled(native_logits).unsqueeze(1) + self.offset  # B x groups x 14
        peak = x.amax(dim=-1, keepdim=True)  # stable log-sum-exp written out (exports to plain ONNX ops)
        return (peak + torch.log(torch.exp(x - peak).sum(dim=-1, keepdim=True))).squeeze(-1) + self.bias

    @torch.no_grad()
    def reset(self) -> None:
        self.log_temperature.zero_()
        self.bias.zero_()

    def fit(self, native_logits: torch.Tensor, targets: torch.Tensor, *, fit_bias: bool = False,
            max_iter: int = 200) -> dict[str, float]:
        """Fit the temperature (and with ``fit_bias`` the per-class bias) by minimising the NLL.

        ``native_logits``: ``N x 14`` SonoNet logits of held-apart images; ``targets``: indices into
        :attr:`classes`. Fit the bias only when every output class has examples, otherwise the
        absent classes are pushed down for no reason. Returns the NLL before and after.
        """
        z = native_logits.detach().float()
        y = targets.detach().long()
        if z.ndim != 2 or z.shape[1] != len(self.native_classes) or y.shape != (z.shape[0],):
            raise BadInputError(f"fit expects N x {len(self.native_classes)} logits and N targets, "
                                f"got {tuple(z.shape)} and {tuple(y.shape)}")
        if y.numel() == 0 or int(y.min()) < 0 or int(y.max()) >= len(self.classes):
            raise BadInputError(f"targets must be class indices in [0, {len(self.classes)})")
        self.reset()
        params = [self.log_temperature] + ([self.bias] if fit_bias else [])
        loss_fn = nn.CrossEntropyLoss()
        with torch.no_grad():
            before = float(loss_fn(self(z), y))
        opt = torch.optim.LBFGS(params, lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn(self(z), y)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        with torch.no_grad():
            after = float(loss_fn(self(z), y))
        return {"nll_before": before, "nll_after": after, "temperature": self.temperature}


class SonoNetPlanesHead(nn.Module):
    """SonoNet's own 14-way head (``native``) followed by :class:`PlaneMappingHead` (``mapping``)."""

    def __init__(self) -> None:
        super().__init__()
        self.native = AdaptationHead(len(SONONET_CLASSES), final_bn=True)
        self.mapping = PlaneMappingHead()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.native(features))


class SonoNetClassifier(FetalscopeClassifier):
    """A :class:`FetalscopeClassifier` that also exposes SonoNet's own 14-plane logits when it has them.

    ``classes``: the output labels of ``forward``; ``native_classes``: :data:`SONONET_CLASSES` when the
    model keeps SonoNet's original head, else ``()``.
    """

    classes: tuple[str, ...]
    native_classes: tuple[str, ...]

    def _native_head(self) -> AdaptationHead:
        if isinstance(self.head, SonoNetPlanesHead):
            return self.head.native
        if getattr(self, "native_classes", ()) and isinstance(self.head, AdaptationHead):
            return self.head
        raise UnsupportedError(
            f"{self.spec.name} has a new head and no SonoNet 14-plane output; use sononet16_native "
            "or sononet16_planes (or the 'sononet-planes' bundle) for SonoNet's own planes."
        )

    def extra_output_names(self) -> tuple[str, ...]:
        return ("native_logits",) if isinstance(self.head, SonoNetPlanesHead) else ()

    def forward_with_extras(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Plane logits plus SonoNet's own 14 logits, temperature-scaled like the plane mapping."""
        if not isinstance(self.head, SonoNetPlanesHead):
            return self(x), {}
        logits, native = self.logits_and_native(x)
        return logits, {"native_logits": self.head.mapping.scaled(native)}

    def native_logits(self, x: torch.Tensor) -> torch.Tensor:
        """SonoNet's own 14 logits (order :data:`SONONET_CLASSES`), without temperature."""
        return self._native_head()(self.backbone(x))

    def logits_and_native(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(forward logits, SonoNet 14 logits)`` from one pass through the backbone."""
        features = self.backbone(x)
        native = self._native_head()(features)
        if isinstance(self.head, SonoNetPlanesHead):
            return self.head.mapping(native), native
        return native, native


def load_sononet16_features(features: SonoNetFeatures, path: str | Path | None = None) -> None:
    """Load the 13 convolution layers of SonoNet16.npz into ``features`` (e.g. a segmentation encoder)."""
    _assign_features(features, read_sononet16_npz(path))


def _assign_features(features: SonoNetFeatures, layers: list[ConvBNWeights]) -> None:
    for i, (block, layer) in enumerate(zip(features.conv_layers(), layers, strict=False)):
        assign_conv_bn(block.conv, block.bn, layer, f"backbone conv {i + 1}")


def load_sononet16_weights(model: SonoNetClassifier, path: str | Path | None = None,
                           *, head: bool = True) -> None:
    """Load SonoNet16.npz into ``model.backbone`` and, where the head has them, its adaptation layers.

    ``head=True`` loads both adaptation convolutions into a 14-way SonoNet head, or only the first
    (128 -> 64) into a new adaptation head; a linear probe head is left as initialised.
    """
    layers = read_sononet16_npz(path)
    convs = model.backbone.conv_layers()
    _assign_features(model.backbone, layers)
    if not head:
        return
    target = model.head.native if isinstance(model.head, SonoNetPlanesHead) else model.head
    if isinstance(target, AdaptationHead):
        assign_conv_bn(target.adapt.conv, target.adapt.bn, layers[len(convs)], "adaptation 128->64")
        if isinstance(target.classify, ConvBNReLU):
            assign_conv_bn(target.classify.conv, target.classify.bn, layers[len(convs) + 1],
                           "adaptation 64->14")


def _build(spec: ModelSpec, head: nn.Module, num_classes: int, classes: tuple[str, ...],
           native: bool) -> SonoNetClassifier:
    model = SonoNetClassifier(SonoNetFeatures(), head, spec, num_classes,
                              blocks=[f"backbone.stage{i}" for i in range(1, len(FEATURE_STAGES) + 1)])
    model.classes = classes
    model.native_classes = SONONET_CLASSES if native else ()
    return model


def _spec(name: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        preprocess=SONONET_PREPROCESS,
        gradcam_layer="backbone.stage5",
        base_weights=_BASE_WEIGHTS,
        licence="Apache-2.0 (SonoNet weights; cite Baumgartner et al. 2017)",
        weights_hint=_HINT,
        description=description,
        tags=("sononet", "ultrasound", "greyscale"),
    )


NATIVE_SPEC = _spec("sononet16_native", "SonoNet-16 with its original 14 standard-plane outputs")
PLANES_SPEC = _spec("sononet16_planes", "SonoNet-16 with its 14 outputs mapped onto the FETAL_PLANES_DB "
                    "planes (Maternal cervix not covered)")
FINETUNE_SPEC = _spec("sononet16", "SonoNet-16 features with a new head for num_classes (fine-tuning)")


def _check_classes(name: str, num_classes: int, expected: int) -> None:
    if num_classes != expected:
        raise BadInputError(f"{name} has exactly {expected} outputs; got num_classes={num_classes}. "
                            "Use 'sononet16' for a new head with another number of classes.")


@register_model(NATIVE_SPEC)
def sononet16_native(num_classes: int = len(SONONET_CLASSES), pretrained: bool = False,
                     weights_path: str | Path | None = None) -> SonoNetClassifier:
    """SonoNet-16 with its 14 original outputs (:data:`SONONET_CLASSES`)."""
    _check_classes(NATIVE_SPEC.name, num_classes, len(SONONET_CLASSES))
    model = _build(NATIVE_SPEC, AdaptationHead(len(SONONET_CLASSES), final_bn=True), num_classes,
                   SONONET_CLASSES, native=True)
    if pretrained:
        load_sononet16_weights(model, weights_path)
    return model


@register_model(PLANES_SPEC)
def sononet16_planes(num_classes: int = len(PLANES_COVERED), pretrained: bool = False,
                     weights_path: str | Path | None = None) -> SonoNetClassifier:
    """SonoNet-16 with :class:`PlaneMappingHead`: outputs :data:`PLANES_COVERED` (no Maternal cervix)."""
    _check_classes(PLANES_SPEC.name, num_classes, len(PLANES_COVERED))
    model = _build(PLANES_SPEC, SonoNetPlanesHead(), num_classes, PLANES_COVERED, native=True)
    if pretrained:
        load_sononet16_weights(model, weights_path)
    return model


@register_model(FINETUNE_SPEC)
def sononet16(num_classes: int, pretrained: bool = False,
              head: Literal["adaptation", "linear"] = "adaptation",
              weights_path: str | Path | None = None) -> SonoNetClassifier:
    """SonoNet-16 features (pretrained: SonoNet16.npz) with a new ``num_classes`` head.

    ``head="adaptation"``: 1x1 conv 128->64 + BN + ReLU (initialised from SonoNet when pretrained),
    1x1 conv 64->num_classes with bias, spatial mean. ``head="linear"``: spatial mean + linear layer.
    """
    if head == "adaptation":
        new_head: nn.Module = AdaptationHead(num_classes, final_bn=False)
    elif head == "linear":
        new_head = LinearProbeHead(num_classes)
    else:
        raise BadInputError(f"sononet16: head must be 'adaptation' or 'linear', got '{head}'")
    model = _build(FINETUNE_SPEC, new_head, num_classes, (), native=False)
    if pretrained:
        load_sononet16_weights(model, weights_path)
    return model
