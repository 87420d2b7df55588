"""Sphinx configuration for zfitlite."""

import sys
from pathlib import Path

# document the checkout this file is in, also when zfitlite is not installed from it
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "zfitlite"
author = "zfitlite developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.doctest", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
napoleon_numpy_docstring = True
# "Attributes" sections as :ivar: fields, so that an attribute that is also a documented
# property is not described twice
napoleon_use_ivar = True
# "a, b : float" stays one entry instead of repeating its description for each name
napoleon_use_param = False
autodoc_member_order = "bysource"
# links to sections of other pages: [text](page.md#section-title)
myst_heading_anchors = 3
html_theme = "alabaster"
exclude_patterns = ["_build"]
