"""The result store: schemas of trial and tuning rows, the row files and tables, the results folder's lock, and
the run's storage (a folder or an object store).
"""
