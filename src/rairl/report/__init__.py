"""`rairl report RUN_DIR`: one self-contained HTML page of what a run folder holds, rendered from saved files only.

`outputs` finds what the commands wrote; `heatmap` reads their traces and draws per-token reward heat maps;
`plots` draws the figures, `figures` embeds and saves them; `sections` builds each section, `page` the frame;
`html` assembles the page (`render`).
"""
