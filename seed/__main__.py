"""`python -m seed ...` is `coalition seed ...`."""

from seed.command import seed_app

if __name__ == "__main__":  # worker processes (spawned) import this module too
    seed_app(prog_name="python -m seed")
