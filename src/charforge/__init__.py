"""charforge: teach an original character to a diffusion model, generate it, evaluate it, draw comics.

The public Python API lives in :mod:`charforge.api`; the CLI (:mod:`charforge.cli`) is a thin layer
over it.
"""

__version__ = "0.1.0"
