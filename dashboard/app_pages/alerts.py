"""Alerts: what is firing now, what changed, the rules, and a rule editor with a backtest
of when a rule would have fired."""

from datetime import timedelta

import streamlit as st

from dashboard import auth, charts, data, views
from dashboard.data import engine
from shared.alerts import definitions
from shared.alerts.metrics import METRICS
from shared.alerts.rules import Comparator, NoDataPolicy, Severity
from shared.errors import DomainError

st.title("Alerts")
current, events, rules = data.active_alerts(), data.alert_events(), data.alert_rules()

firing = [alert for alert in current if alert.state == "firing"]
firing_tile, pending_tile, no_data_tile, rules_tile = st.columns(4)
firing_tile.metric("Firing", len(firing))
pending_tile.metric(
    "Pending or recovering", sum(a.state in ("pending", "recovering") for a in current)
)
no_data_tile.metric("No data", sum(alert.state == "no_data" for alert in current))
rules_tile.metric("Rules enabled", data.alert_rule_count())

st.subheader("Now")
if current:
    st.dataframe(views.alert_rows(current), hide_index=True, use_container_width=True)
elif rules:
    st.success("All quiet: no alert is firing, pending or without data.")
else:
    st.info(
        "No alert rules yet. Install the documented defaults with "
        "`coalition alerts install-defaults`, or create a rule below."
    )

st.subheader("History")
if events:
    st.plotly_chart(charts.changes_per_day(events), use_container_width=True)
    st.dataframe(
        [
            {
                "at": event.tick,
                "rule": event.rule_name,
                "for": event.scope_label,
                "change": f"{event.from_state} → {event.to_state}",
                "value": views.alert_value(event.value),
                "severity": event.severity,
                "notified": event.notified,
            }
            for event in events
        ],
        hide_index=True,
        use_container_width=True,
    )
else:
    st.caption("No alert has changed state yet.")

st.subheader("Rules and backtest")
choices = {"New rule": None} | {rule.name: rule for rule in rules}
chosen = choices[st.selectbox("Rule", list(choices))]

if chosen is not None:
    days = st.slider("Backtest over the last days", 7, 400, 90, step=1)
    result = data.alert_backtest(chosen.rule_id, days)
    fired = list(result.episodes)
    st.caption(f"{len(fired)} firing(s) in {days} days, evaluated every {result.step} from normal.")
    if fired:
        st.dataframe(
            [
                {
                    "for": episode.scope_label,
                    "fired": episode.fired_at,
                    "resolved": episode.resolved_at or "still firing",
                    "worst value": views.alert_value(episode.worst_value),
                }
                for episode in fired
            ],
            hide_index=True,
            use_container_width=True,
        )
    by_label = {series.scope_label: series for series in result.series}
    if by_label:
        fired_labels = [episode.scope_label for episode in fired]
        default = fired_labels[0] if fired_labels else next(iter(by_label))
        label = st.selectbox("Show", list(by_label), index=list(by_label).index(default))
        st.plotly_chart(
            charts.backtest_figure(
                by_label[label].points,
                title=f"{chosen.name}: {label}",
                unit=METRICS[chosen.metric].unit,
                threshold=chosen.threshold,
                recovery_threshold=chosen.recovery_threshold,
            ),
            use_container_width=True,
        )

# Analysts stop here: the editor acts as the signed-in admin (audit records name them).
EDITOR = auth.require_admin("create, change or delete alert rules").principal
base = chosen
with st.form("rule_editor"):
    st.markdown("**Edit rule**" if base else "**New rule**")
    name = st.text_input("Name", value=base.name if base else "")
    description = st.text_area("Description", value=base.description if base else "")
    metric_names = sorted(METRICS)
    metric = st.selectbox(
        "Metric",
        metric_names,
        index=metric_names.index(base.metric) if base else 0,
        format_func=lambda name: f"{METRICS[name].title} ({name})",
    )
    scope = st.selectbox(
        "Scope", ["network", "merchant", "tier"],
        index=["network", "merchant", "tier"].index(base.scope) if base else 0,
    )  # fmt: skip
    comparators = [c.value for c in Comparator]
    left, right = st.columns(2)
    comparator = left.selectbox(
        "Breaches when value is", comparators,
        index=comparators.index(base.comparator) if base else 0,
    )  # fmt: skip
    threshold = right.number_input(
        "Threshold", value=float(base.threshold) if base else 0.0, format="%.4f"
    )
    recovery = left.text_input(
        "Recovery threshold (blank: the threshold)",
        value="" if not base or base.recovery_threshold is None else f"{base.recovery_threshold:g}",
    )
    window_hours = right.number_input(
        "Window (hours)", min_value=1, max_value=9600,
        value=int(base.window / timedelta(hours=1)) if base else 24,
    )  # fmt: skip
    every_minutes = left.number_input(
        "Evaluate every (minutes)", min_value=1, max_value=1440,
        value=int(base.evaluate_every / timedelta(minutes=1)) if base else 60,
    )  # fmt: skip
    baseline_days = right.number_input(
        "Compare with the same window this many days earlier (0: no)", min_value=0,
        max_value=400,
        value=int(base.baseline_offset / timedelta(days=1)) if base and base.baseline_offset else 0,
    )  # fmt: skip
    min_baseline = left.text_input(
        "Minimum baseline (blank: none)",
        value="" if not base or base.min_baseline is None else f"{base.min_baseline:g}",
    )
    pending = right.number_input(
        "Pending evaluations", 1, 1000, value=base.pending_evaluations if base else 1
    )
    recovering = left.number_input(
        "Recovery evaluations", 1, 1000, value=base.recovery_evaluations if base else 1
    )
    severities = [s.value for s in Severity]
    severity = right.selectbox(
        "Severity", severities, index=severities.index(base.severity) if base else 1
    )
    policies = [p.value for p in NoDataPolicy]
    no_data = left.selectbox(
        "When there is no data", policies, index=policies.index(base.no_data) if base else 0
    )
    owner = right.text_input("Owner", value=base.owner if base else "")
    enabled = st.checkbox("Enabled", value=base.enabled if base else True)
    saved = st.form_submit_button("Save rule", type="primary")

if saved:
    try:
        fields = {
            "name": name.strip(),
            "description": description,
            "metric": metric,
            "scope": scope,
            "comparator": comparator,
            "threshold": float(threshold),
            "recovery_threshold": float(recovery) if recovery.strip() else None,
            "window": timedelta(hours=int(window_hours)),
            "evaluate_every": timedelta(minutes=int(every_minutes)),
            "baseline_offset": timedelta(days=int(baseline_days)) if baseline_days else None,
            "min_baseline": float(min_baseline) if min_baseline.strip() else None,
            "pending_evaluations": int(pending),
            "recovery_evaluations": int(recovering),
            "severity": severity,
            "no_data": no_data,
            "owner": owner.strip(),
            "enabled": enabled,
        }
        with engine().begin() as connection:
            if base is None:
                definitions.create_rule(connection, EDITOR, **fields)
            else:
                definitions.update_rule(connection, EDITOR, base.rule_id, fields)
    except ValueError:
        st.error("Thresholds and the minimum baseline must be numbers.")
    except DomainError as error:
        st.error(error.detail)
    else:
        st.cache_data.clear()
        st.success(f"Saved {fields['name']}.")
        st.rerun()

if base is not None and st.button("Delete this rule", type="secondary"):
    with engine().begin() as connection:
        definitions.archive_rule(connection, EDITOR, base.rule_id)
    st.cache_data.clear()
    st.rerun()
