"""Page sections shown on more than one page, written once."""

from __future__ import annotations

from dashboard import charts, data, ui, views
from shared.analytics.filters import Filters


def points_liability(filters: Filters, how: str, *, month_by_month: bool = False) -> None:
    """The liability's tiles and roll-forward (the network's, whatever the filters), as of
    the end of the selected dates or now."""
    ui.section("Points liability")
    report = data.liability_report(views.liability_as_of(filters))
    ui.figure_tiles(views.liability_tiles(report))
    if not (report.outstanding_points or any(line.issued_points for line in report.roll_forward)):
        ui.empty_state("No points have been issued yet: there is no liability to roll forward.")
        return
    ui.chart(charts.liability_roll_forward(report), how=how)
    if month_by_month:
        with ui.details("Month by month"):
            ui.table(views.roll_forward_rows(report))
