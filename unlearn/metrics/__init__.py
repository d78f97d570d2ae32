"""Metrics of a run. The package imports nothing on its own, so any module may import a metric
module (the key registry, `metrics.keys`, above all) without a cycle; `unlearn/__init__` imports
every module here, which registers the probes (eval.probes) and declares their keys."""
