"""`python -m solvers.demo`: the `metric-flows` command (the console script runs `solvers.demo:main`)."""

from . import main

if __name__ == "__main__":
    main()
