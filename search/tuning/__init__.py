"""The search side: storage, studies, samplers and pruners, the objective, the worker loop,
launching workers, progress and reports: everything that talks to Optuna. It drives the
training room (search.training), which never calls back into it."""

# Here, not in storage.py: the commands name it in --help without loading SQLAlchemy.
DEFAULT_STORAGE = "sqlite:///studies.db"
