"""`python -m search COMMAND ...`: the same as the installed `cifar-search COMMAND ...`."""

from search import commands

commands.main()
