"""`python -m solvers.demo`: the `metric-flows` command (the console script runs `solvers.demo:command`)."""

from . import command

if __name__ == "__main__":
    command()
