"""The search side: everything that talks to Optuna, in rooms whose imports point down
(pyproject's import-linter contract keeps them):

    results      summary and status, the report, selection, the seed-averaged final, artifacts
    execution    the trial loop and claims, recovery, the objective, the worker, launch
    study        creating, resuming and reading a study (study.py)
    strategies   samplers, pruners, promotion, Pareto halving, PBT, transfer (and strategy.py,
                 which turns a study's settings into its strategy)  |  store  storages
    records      user-attribute keys, settings, counts and the best trials

It drives the training room (search.training), which never calls back into it."""

# Here, not in store/storage.py: the commands name it in --help without loading SQLAlchemy.
DEFAULT_STORAGE = "sqlite:///studies.db"
