"""SinGAN-Seg: synthetic image/mask pairs from one polyp image (Thambawita et al., PLOS ONE 2022).

The library trains one 4-channel SinGAN (RGB + mask) per real image, samples synthetic
pairs and refines them with neural style transfer. See README.md and docs/.
"""

__version__ = "0.1.0"
