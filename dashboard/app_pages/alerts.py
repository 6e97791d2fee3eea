"""Alerts: rules with thresholds on the network's figures, and the alerts they raised."""

from dashboard import ui

ui.page_title("Alerts", "Thresholds on the network's figures, and what crossed them.")
ui.empty_state("No alert rules exist yet, so no alert has fired.")
ui.coming_soon(
    [
        "the alert rules (a figure, a threshold, who is told), editable by admins",
        "the alerts raised, newest first, with the figure that crossed its threshold",
    ]
)
