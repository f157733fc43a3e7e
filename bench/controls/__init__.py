"""Controls: every measure a claim uses, run on inputs with a known answer at the suite's n.

`inputs` makes the known-answer sample sets from the suite's own data, `readings` says what each
measure must read on each of them and judges it with the verdict's own rules, `run` evaluates a
suite's controls into controls.csv (`run_bench.py controls --suite SUITE --out DIR`).
"""

CONTROLS_CSV = "controls.csv"  # in the results folder: written by `run`, read by the report
