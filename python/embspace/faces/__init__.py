"""What the faces (command line, terminal UI, demo) share, over the public API.

One idea per module, none importing Textual, argparse or the faces themselves:

- :mod:`.values`: the one grammar of values a person types (``--set``,
  ``--values``, the TUI's fields), on :func:`embspace.jsonio.parse_literal`;
- :mod:`.estimators`: the estimators the faces offer, by name (a
  :class:`~embspace._registry.Registry`), their parameters and defaults;
- :mod:`.datasets`: the datasets the faces offer and how they describe them
  (loading itself is :func:`embspace.datasets.load`);
- :mod:`.measures`: the default measures and the one check of measure names;
- :mod:`.keys`: titles and genres of MovieLens-style ``(title, genres)`` keys;
- :mod:`.tables`: sweep and neighbor tables as plain text.

The package imports nothing on its own (``embspace --help`` stays fast):
import the module you need.
"""

from __future__ import annotations

__all__: list[str] = []
