"""Sphinx configuration: MyST Markdown pages with the furo theme, nerfstudio's own documentation stack, so a method
page can move into nerfstudio's ``docs/nerfology/methods/`` as it is. Built by ``bash scripts/docs.sh``."""

project = "nerfstudio-methods"
author = "nerfstudio-methods contributors"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "nerfstudio-methods"
myst_heading_anchors = 3
