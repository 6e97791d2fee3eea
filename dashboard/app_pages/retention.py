"""Retention: how many members of each enrolment cohort are still active."""

from dashboard import ui

ui.page_title("Retention", "Members by the month they enrolled, and how many stay active.")
ui.coming_soon(
    [
        "a cohort heatmap: the share of each enrolment month's members active N months later",
        "the same by acquiring merchant and tier (sidebar filters)",
    ]
)
