"""Ray Tune: the only package that imports ray. The driver of a run (`driver`), the worker side of a trial
(`worker`), the two tuning phases (`tuning`, `tuning_worker`), the one experiment builder
(`experiment`), and what a run needs around them: cluster, cell feed, progress, signals, tracking.
"""
