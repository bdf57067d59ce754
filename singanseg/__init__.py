"""SinGAN-Seg: synthetic image/mask pairs from one polyp image (Thambawita et al., PLOS ONE 2022).

The library trains one 4-channel SinGAN (RGB + mask) per real image, samples synthetic
pairs and refines them with neural style transfer. See README.md and docs/.

    import singanseg
    model = singanseg.train("image.jpg", "mask.png", "model/", config=singanseg.preset("smoke"))
    pairs = model.sample(num=10, gen_start_scale=0)
"""

__version__ = "0.1.0"

from singanseg.api import load, train  # noqa: E402
from singanseg.config import SinGANConfig, preset  # noqa: E402
from singanseg.model import SinGANSeg  # noqa: E402
from singanseg.style import StyleConfig, stylize  # noqa: E402

__all__ = ["SinGANConfig", "SinGANSeg", "StyleConfig", "__version__", "load", "preset", "stylize", "train"]
