"""Churn: members' lifecycle states and who is likely to lapse."""

from dashboard import ui

ui.page_title("Churn", "Members' lifecycle states and the likelihood that they are still active.")
ui.coming_soon(
    [
        "members by lifecycle state (new, active, at risk, lapsed) over time",
        "the modelled probability that a member is still active, and the members most at risk",
    ]
)
