"""Merchants & settlement: a closed period's statements and net positions, who redeemed
whose points, and the points liability."""

import streamlit as st

from dashboard import charts, data, sections, ui, views
from dashboard import formats as fmt
from dashboard.filters import current_filters

filters = current_filters()
ui.page_title(
    "Merchants & settlement",
    "Each period's statements: what every merchant pays HQ for the points it issued and "
    "is paid for the points redeemed at its tills, netted. Then the points liability.",
)

periods = data.settlement_periods()
in_dates = [
    period
    for period in periods
    if period.starts_at < filters.ends_at and period.ends_at > filters.starts_at
]
if not periods:
    ui.empty_state(
        "No settlement period has closed yet. `coalition jobs settle` closes each period "
        "once it has ended (the compose worker runs it)."
    )
elif not in_dates:
    ui.empty_state(
        f"No closed period overlaps the selected dates. The latest closed period is "
        f"{periods[0].label}: widen the dates to see it."
    )
else:
    chosen = ui.choose(
        "Settlement period",
        {
            period.period_id: f"{period.label} ({fmt.count(period.transactions, 'transactions')})"
            for period in in_dates
        },
        key="period",
    )
    network = data.network_view(chosen)
    ui.figure_tiles(views.network_tiles(network))
    st.caption("HQ's figures for the whole network, whatever the merchants selected.")

    ui.section("Statements")
    statements = [
        statement
        for statement in data.statements(chosen)
        if filters.covers_merchants([statement.merchant_id])
    ]
    if statements:
        ui.chart(
            charts.net_positions(statements),
            how="Net = points issued x the merchant's issuance price - points redeemed at "
            "its tills x its redemption rate, corrections and breakage shares included; each "
            "line rounded once, half away from zero (docs/settlement.md).",
        )
        ui.table(views.statement_rows(statements))
    else:
        ui.empty_state("None of the selected merchants has a statement for this period.")

    ui.section("Clearing")
    cells = [
        cell
        for cell in data.clearing(chosen)
        if filters.covers_merchants([cell.issuing_merchant_id, cell.redeeming_merchant_id])
    ]
    if cells:
        ui.chart(
            charts.clearing_matrix(cells, data.merchant_names(), network.currency),
            how="Points redeemed in the period, by the merchant that issued the lots they "
            "came from (rows; Network: points HQ issued) and the merchant where they were "
            "redeemed (columns), valued at the redeemer's rate.",
        )
    else:
        ui.empty_state("No points changed hands between the selected merchants this period.")

sections.points_liability(
    filters,
    how="IFRS 15 style: opening + issued - redeemed - expired + other + change in the "
    "breakage estimate = closing, each month's movements at the value per point in force "
    "during it; the network's, whatever the filters (docs/settlement.md).",
    month_by_month=True,
)
