"""Activity: purchases, visits and cross-merchant behaviour."""

from dashboard import ui

ui.page_title("Activity", "What members do: purchases, visits, and where they shop.")
ui.coming_soon(
    [
        "purchases, spend and active members over time, by merchant and tier",
        "cross-merchant behaviour: how many partners members visit",
    ]
)
