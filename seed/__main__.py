"""`python -m seed ...` is `coalition seed ...`."""

from seed.command import seed_app

seed_app(prog_name="python -m seed")
