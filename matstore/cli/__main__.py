"""`python -m matstore.cli ...` == `matstore ...`."""

from . import main

if __name__ == "__main__":   # a Dask worker spawned from this process re-imports it as __mp_main__
    main()
