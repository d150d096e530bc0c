"""Entry point kept at the top level of the repo: `python cli.py ...` == `matstore ...`.

The click application itself is matstore/cli.py so that the installed package carries it.
"""

from matstore.cli import main

if __name__ == "__main__":
    main()
