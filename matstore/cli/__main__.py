"""`python -m matstore.cli ...` == `matstore ...`."""

from . import main

main()
