"""What the terminal UI shows, computed without Textual.

Plain Python over the public embspace API and :mod:`embspace.faces`, one
concern per module, tested directly; the panes only display what these
return:

- :mod:`.form`: the sweep form's defaults and :class:`~.form.SweepSpec`;
- :mod:`.grid`: the similarity table and the chart's series;
- :mod:`.pairs`: the models offered as A and B and :class:`~.pairs.ModelPair`;
- :mod:`.neighbors`: one entity's neighbors in A and B side by side;
- :mod:`.changes`: entities ranked by how much their neighborhood changed;
- :mod:`.search`: finding and completing titles.
"""

from __future__ import annotations

__all__: list[str] = []
