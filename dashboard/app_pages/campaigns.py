"""Campaigns: every campaign for the selected merchants and tiers, and what the chosen one
caused (its treatment arm against its randomised holdout)."""

import streamlit as st

from dashboard import auth, charts, data, ui, views
from dashboard.filters import current_filters
from shared.analytics.campaigns import first_with_results
from shared.campaigns.definitions import CANCELLABLE
from shared.settings import get_settings

filters = current_filters()
campaigns = data.campaigns(filters)
ui.page_title(
    "Campaigns",
    "Every campaign for the selected merchants and tiers, newest first. Results cover each "
    "campaign's own window: the date filter does not apply here.",
)
if not campaigns:
    ui.empty_state(
        "No campaign concerns the selected merchants and tiers. HQ and merchants create "
        "campaigns through the API (`POST /v1/campaigns`)."
    )
    st.stop()

ui.table(
    views.campaign_rows(campaigns, data.merchant_names()),
    how="Status is read at the database's clock: a scheduled campaign is running once it "
    "has started and ended once past its end. Holdout: the share of targeted members kept "
    "out at random, to compare with.",
)

by_id = {campaign.campaign_id: campaign for campaign in campaigns}
chosen = ui.choose(
    "Campaign",
    {campaign_id: views.campaign_label(campaign) for campaign_id, campaign in by_id.items()},
    default=first_with_results(campaigns).campaign_id,
    key="campaign",
)
campaign = by_id[chosen]
result, computed_at = data.campaign_results(chosen)

ui.section(campaign.name)
st.caption(views.campaign_window(result, computed_at))
mismatch = views.sample_ratio_warning(result)
if mismatch:
    ui.warning(mismatch)
if charts.has_lifts(result):
    ui.figure_tiles(views.campaign_effect_tiles(result))
    ui.figure_tiles(views.campaign_money_tiles(result, get_settings().program.currency))
    ui.chart(
        charts.campaign_lifts(result),
        how="Per targeted member over the window: visits (earn transactions at the "
        "campaign's partners), spend, points earned, active or not. Treatment against "
        "holdout with Welch's test (proportions: a two-proportion z-test); visits are "
        "CUPED-adjusted with each member's visits in the pre-period of the same length. "
        "Lift = difference / holdout mean; grey: the interval includes no effect.",
    )
else:
    ui.empty_state(
        "No results yet: the statistics need a window that has begun and at least two "
        "members in each arm."
    )

if campaign.status in CANCELLABLE:
    ui.section("Cancel this campaign")
    admin = auth.require_admin("cancel campaigns")
    if ui.confirmed_action(
        f"Cancel {campaign.name}",
        "it stops awarding bonuses at once, and cannot be undone; its results stay",
        key=f"cancel_{chosen}",  # one acknowledgement per campaign
    ):
        refusal = data.cancel_campaign(chosen, admin)
        if refusal:
            ui.warning(refusal)
        else:
            st.rerun()
