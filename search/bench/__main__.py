"""`python -m search.bench`: the command of the benchmark room (search/bench/__init__.py)."""

from search import cli
from search.bench import main

cli.run_main(main, "search.bench")
