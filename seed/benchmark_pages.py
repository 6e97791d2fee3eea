"""Dashboard page render times on the current database, through Streamlit's AppTest.

    COALITION_DATA_DIR=/tmp/coalition-bench .venv/bin/python -m seed.benchmark_pages

Each page is rendered twice in one process: cold (empty Streamlit caches: every query
runs) and warm (cached loads, what a second visitor sees within the caches' TTL). The
statistics libraries (scipy, statsmodels: seconds to import) are imported first, as in a
dashboard server that has served one page that needs them; that import is timed apart. The pages run as an HQ analyst `benchmark-reader`, created if missing (the
only write). Prints one line per page and a JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PAGES = ("overview", "retention", "churn", "activity", "redemption", "settlement",
         "campaigns", "alerts")  # fmt: skip
DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
READER = "benchmark-reader"


def reader(url: str):
    from sqlalchemy import create_engine

    from shared import hq_users
    from shared.errors import NotFound

    engine = create_engine(url)
    with engine.begin() as connection:
        try:
            user = hq_users.get_user(connection, READER)
        except NotFound:
            user = hq_users.create_user(
                connection,
                username=READER,
                display_name="Benchmark reader",
                role=hq_users.HqRole.ANALYST,
                password=None,
            )
    engine.dispose()
    return user


def render(page: str, user) -> float:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(DASHBOARD), default_timeout=300)
    app.session_state["hq_user"] = user
    started = time.perf_counter()
    app.run()  # the default page, Overview
    if page != "overview":
        started = time.perf_counter()
        app.switch_page(f"app_pages/{page}.py").run()
    seconds = time.perf_counter() - started
    if app.exception:
        raise RuntimeError(f"{page}: {app.exception}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="*", default=PAGES, choices=PAGES)
    arguments = parser.parse_args()

    import streamlit as st

    from shared.database.bootstrap import database_url
    from shared.settings import get_settings

    url = database_url(get_settings()).render_as_string(hide_password=False)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    user = reader(url)
    started = time.perf_counter()
    import scipy.stats  # noqa: F401
    import statsmodels.stats.proportion  # noqa: F401

    print(f"importing scipy and statsmodels: {time.perf_counter() - started:.2f} s")
    figures = {}
    for page in arguments.pages:
        st.cache_data.clear()
        st.cache_resource.clear()
        cold = render(page, user)
        warm = render(page, user)
        figures[page] = {"cold_s": round(cold, 3), "warm_s": round(warm, 3)}
        print(f"{page:<12} cold {cold:6.2f} s   warm {warm:6.2f} s", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
