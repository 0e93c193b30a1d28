"""torchvision's Inception-v3 (ImageNet weights): the network of the modern pose-transfer FID.

GFLA, PIDM and CFLD compute FID on the 2048-d average-pool features of torchvision's
ImageNet Inception-v3 (`inception_v3_google-0cc3c7bd.pth`, IMAGENET1K_V1), not on the
2015-12-05 TF Inception of the original FID. pgkit runs torchvision's own `Inception3`
definition (a well-kept library, not a re-typed network) with the weights loaded as a plain
state dict (`torch.load(weights_only=True)`: no code runs).

torchvision is an optional extra (`pip install torchvision`). Its PyPI wheels for Linux are
CUDA builds whose C extension cannot load beside a CPU-only torch ("operator torchvision::nms
does not exist" while `torchvision/__init__` registers its ops); the model definitions are
pure Python and need none of those ops. When the plain import fails for that reason,
`torchvision_models()` imports just the pure-Python modules under the same names, without
the package's `__init__`; everything else about torchvision is untouched.

The published scripts feed the network differently; `InceptionV3Features.prepare` takes the
input rule of a protocol (`TVInput`): resize filter to 299 (and `align_corners`), the value
mapping, and whether torchvision's `transform_input` formula runs. GFLA, PIDM and CFLD all
give [0, 1] images to x * (std / 0.5) + (mean - 0.5) / 0.5 (pytorch-fid's code before its
2019-02-16 fix to 2x - 1; the formula of torchvision's `transform_input`), so the network
sees roughly [-0.03, 0.43], not [-1, 1]: reproduced as scale "unit" + transform_input.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from pgprep.errors import PgkitError

INPUT_SIZE = 299
FEATURE_DIM = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# names torchvision.models re-exports from these submodules (as its own __init__ does)
_SUBMODULES = ("inception", "alexnet", "vgg", "squeezenet")


def _fresh_import():
    import torchvision.models as tvm  # noqa: PLC0415 - optional extra

    return tvm


def torchvision_models() -> types.ModuleType:
    """`torchvision.models`, or its pure-Python model modules when the C extension cannot load.

    Raises PgkitError with the install line when torchvision is not installed at all."""
    try:
        return _fresh_import()
    except ModuleNotFoundError:
        raise PgkitError(None, "the modern FID needs torchvision's Inception-v3 definition: "
                         "pip install torchvision (the CPU or CUDA build matching your torch)") from None
    except (RuntimeError, ImportError, OSError):
        pass   # the wheel's compiled ops do not match this torch: load the pure-Python models
    spec = importlib.util.find_spec("torchvision")
    root = Path(spec.submodule_search_locations[0])
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]      # the failed import's half-initialised modules
    pkg = types.ModuleType("torchvision")
    pkg.__path__ = [str(root)]
    pkg.__spec__ = spec
    sys.modules["torchvision"] = pkg
    models_spec = importlib.util.spec_from_file_location(
        "torchvision.models", root / "models" / "__init__.py",
        submodule_search_locations=[str(root / "models")])
    models = types.ModuleType("torchvision.models")
    models.__path__ = [str(root / "models")]
    models.__spec__ = models_spec
    sys.modules["torchvision.models"] = models
    pkg.models = models
    try:
        version = importlib.import_module("torchvision.version")
        pkg.__version__ = version.__version__
    except ImportError:
        pkg.__version__ = "0+unknown"
    for sub in _SUBMODULES:
        mod = importlib.import_module(f"torchvision.models.{sub}")
        for name in getattr(mod, "__all__", ()):
            setattr(models, name, getattr(mod, name))
    return models


@dataclass(frozen=True)
class TVInput:
    """How a script turns a uint8 image into the Inception's input."""

    resize: str = "bilinear"          # "bilinear" (F.interpolate) | "none" (already 299)
    align_corners: bool = False
    scale: str = "unit"               # "unit": x/255 | "minus1_1": x/255 * 2 - 1 | "imagenet": (x/255 - mean) / std
    transform_input: bool = False     # torchvision's own re-normalisation at the start of forward


class InceptionV3Features:
    """2048-d pool features of torchvision's Inception3 with ImageNet weights from a state dict."""

    def __init__(self, weights: str | Path, device="cpu", chunk: int = 32):
        self.path = Path(weights)
        self.device = torch.device(device)
        self.chunk = chunk
        tvm = torchvision_models()
        net = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        from pgtrain.checkpoint import safe_torch_load

        state = safe_torch_load(self.path, what="Inception-v3 weights")   # bounded, weights_only
        if not isinstance(state, dict):
            raise PgkitError(self.path, "expected a state dict of torchvision's Inception-v3")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PgkitError(self.path, "not torchvision's Inception-v3 weights "
                             f"({str(exc).splitlines()[0][:200]})") from None
        net.fc = torch.nn.Identity()
        self.net = net.to(self.device).eval()

    @staticmethod
    def prepare(u8: torch.Tensor, rule: TVInput) -> torch.Tensor:
        """uint8-valued (N, 3, H, W) -> the network's input under `rule`."""
        x = u8.float() / 255.0
        if rule.resize == "bilinear" and tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                              align_corners=rule.align_corners)
        if rule.scale == "minus1_1":
            x = 2 * x - 1
        elif rule.scale == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        if rule.transform_input:    # torchvision Inception3._transform_input, as pretrained models run it
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = x * (std / 0.5) + (mean - 0.5) / 0.5
        return x

    @torch.inference_mode()
    def features(self, u8: torch.Tensor, rule: TVInput) -> torch.Tensor:
        out = []
        for i in range(0, u8.shape[0], self.chunk):
            x = self.prepare(u8[i:i + self.chunk].to(self.device), rule)
            out.append(self.net(x).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)
