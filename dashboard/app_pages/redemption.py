"""Redemption: where points earned are spent, how long they wait, and the liability."""

from dashboard import ui

ui.page_title("Redemption", "Where points earned at one partner are spent, and when.")
ui.coming_soon(
    [
        "a Sankey diagram of points flowing from the merchants that issued them to those "
        "where they were redeemed",
        "a Kaplan-Meier curve: the time from earning points to redeeming them",
        "the points liability (today on the Merchants & settlement page)",
    ]
)
