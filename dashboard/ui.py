"""The building blocks pages are written with: titles, tiles, charts with their notes,
tables, empty states. They hide Streamlit's plumbing so a page reads like a description
of its screen, and they make every page look alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import streamlit as st


def page_title(title: str, description: str) -> None:
    st.title(title)
    st.caption(description)


def section(title: str) -> None:
    st.subheader(title)


def how_computed(note: str) -> None:
    """The short note every figure carries: where its numbers come from."""
    st.caption(f":material/info: **How is this computed?** {note}")


def chart(figure: go.Figure, how: str) -> None:
    # theme=None: Streamlit's theme would replace the house template (charts.py).
    st.plotly_chart(figure, width="stretch", theme=None, config={"displaylogo": False})
    how_computed(how)


def table(rows: list[dict], how: str | None = None) -> None:
    st.dataframe(rows, hide_index=True, width="stretch")
    if how:
        how_computed(how)


def empty_state(message: str) -> None:
    """What a screen says when there is nothing to show, and what would fill it."""
    st.info(message, icon=":material/inbox:")


@dataclass(frozen=True, slots=True)
class Figure:
    """A scorecard tile: a value and, in grey below it, what qualifies it; or, when
    `rise_is_good` is set, its change against the previous period, coloured."""

    label: str
    value: str
    note: str | None = None
    help: str | None = None
    rise_is_good: bool | None = None


def figure_tiles(tiles: Sequence[Figure]) -> None:
    for column, tile in zip(st.columns(len(tiles)), tiles, strict=True):
        change = tile.rise_is_good is not None and tile.note is not None
        column.metric(
            tile.label,
            tile.value,
            tile.note,
            delta_color=("normal" if tile.rise_is_good else "inverse") if change else "off",
            delta_arrow="auto" if change else "off",
            help=tile.help,
            border=True,
        )


def columns(count: int):
    """Figures side by side (`left, right = ui.columns(2)`, then `with left: ...`)."""
    return st.columns(count, gap="medium")


def choose_one(label: str, options: dict, *, default=None, key: str, help: str | None = None):
    """A short choice shown as buttons (grains, kinds): one is always selected."""
    value = st.segmented_control(
        label,
        list(options),
        default=default if default in options else next(iter(options)),
        format_func=options.get,
        required=True,
        key=key,
        help=help,
    )
    return value if value in options else default


def number(label: str, *, value: int, minimum: int, maximum: int, key: str, help: str):
    return int(
        st.number_input(
            label, min_value=minimum, max_value=maximum, value=value, step=1, key=key, help=help
        )
    )


def share(label: str, *, value: float, key: str, help: str) -> float:
    """A share between 0 and 1, picked as a percentage."""
    return st.slider(
        label, min_value=0.0, max_value=1.0, value=value, step=0.05, format="percent",
        key=key, help=help,
    )  # fmt: skip


def caption(text: str) -> None:
    st.caption(text)


def download(label: str, data: str, file_name: str, *, help: str | None = None) -> None:
    st.download_button(
        label, data, file_name=file_name, mime="text/csv", icon=":material/download:", help=help
    )


def choose(label: str, options: dict, *, default=None, key: str):
    """One of `options` (value -> how it reads), `default` first selected."""
    values = list(options)
    index = values.index(default) if default in options else 0
    return st.selectbox(label, values, index=index, format_func=options.get, key=key)


def warning(message: str) -> None:
    st.warning(message, icon=":material/warning:")


def details(label: str):
    """A folded part of the page (`with ui.details(...):`)."""
    return st.expander(label)


def confirmed_action(label: str, consequence: str, *, key: str) -> bool:
    """A button that works once its consequence has been acknowledged."""
    acknowledged = st.checkbox(f"I understand: {consequence}", key=f"{key}_acknowledged")
    return st.button(label, type="primary", disabled=not acknowledged, key=key)


def alert_badge(firing: int) -> None:
    """The sidebar's reminder, on every page, that alerts are firing."""
    if firing:
        st.sidebar.error(
            f"{firing} alert{'s' if firing > 1 else ''} firing: see the Alerts page.",
            icon=":material/notifications_active:",
        )
