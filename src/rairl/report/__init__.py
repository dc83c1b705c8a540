"""`rairl report RUN_DIR`: one self-contained HTML page of what a run folder holds.

`html` finds the outputs (rerank, localize, eval, a demo's results.json) and builds the page; `heatmap` draws
per-token reward heat maps of traces; `plots` draws the figures (PNG, embedded as data URIs and saved beside it).
"""
