"""Ground truth: the parameters a seeded network was drawn from, written beside the data.

Later work checks its estimates against this file: the churn model against the true
BG/NBD parameters (and each member's true rate, dropout probability and fate, in the
member file), the campaign analysis against each campaign's true lift and arms, the
alerts against the incident windows, the dashboards against the counts.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from seed.bulk import SeedReport
from seed.network import moment
from shared.settings import get_settings


def default_path(database: str) -> Path:
    """Beside the data: in the data directory the embedded server also uses."""
    return Path(get_settings().data_dir) / "ground-truth" / f"{database}.json"


def truth_document(report: SeedReport, member_file: Path) -> dict:
    network, config = report.network, report.network.config
    calendar = network.calendar
    rates = np.array([row[1] for shard in report.shards for row in shard.member_truth])
    dropouts = np.array([row[2] for shard in report.shards for row in shard.member_truth])
    alive = sum(row[3] for shard in report.shards for row in shard.member_truth)
    churned = sum(row[4] for shard in report.shards for row in shard.member_truth)
    transactions: dict[str, int] = {}
    totals = {"pointsIssued": 0, "pointsRedeemed": 0, "pointsExpired": 0, "referrals": 0}
    holds: dict[str, int] = {}
    campaign_points: dict[str, int] = {}
    for shard in report.shards:
        for kind, count in shard.counters["transactions"].items():
            transactions[kind] = transactions.get(kind, 0) + count
        for key in totals:
            totals[key] += shard.counters[key]
        for status, count in shard.counters["holds"].items():
            holds[status] = holds.get(status, 0) + count
        for key, points in shard.counters["campaignPoints"].items():
            campaign_points[key] = campaign_points.get(key, 0) + points
    campaigns = []
    for campaign in network.campaigns:
        arms = {"treatment": 0, "holdout": 0}
        for shard in report.shards:
            for arm, count in shard.arms.get(campaign.key, {}).items():
                arms[arm] += count
        campaigns.append(
            {
                "key": campaign.key,
                "campaignId": str(campaign.campaign_id),
                "name": campaign.name,
                "kind": campaign.kind,
                "ownerMerchantId": str(campaign.owner.merchant_id) if campaign.owner else None,
                "fundedBy": "merchant" if campaign.owner else "hq",
                "merchantIds": [str(network.merchants[i].merchant_id) for i in campaign.merchants],
                "startsAt": moment(campaign.start_s).isoformat(),
                "endsAt": moment(campaign.end_s).isoformat(),
                "holdoutBps": campaign.holdout_bps,
                "salt": campaign.salt,
                "terms": campaign.terms,
                "trueVisitLift": campaign.visit_lift,
                "trueEffect": (
                    f"treated members visit {campaign.visit_lift:.0%} more often during the "
                    "window (extra visits at the participating partners)"
                ),
                "targeting": "members enrolled before the start, outside the global holdout",
                "arms": arms,
                "extraVisits": sum(
                    shard.campaign_extra_visits.get(campaign.index, 0) for shard in report.shards
                ),
                "bonusPoints": campaign_points.get(campaign.key, 0),
            }
        )
    incidents = []
    for incident in network.incidents:
        entry = {
            "kind": incident.kind,
            "startsAt": moment(incident.start_s).isoformat(),
            "endsAt": moment(incident.end_s).isoformat(),
        }
        if incident.merchant is not None:
            merchant = network.merchants[incident.merchant]
            entry |= {"merchantId": str(merchant.merchant_id), "merchantName": merchant.name}
        if incident.kind == "churn_spike":
            entry |= {"dropoutShare": incident.magnitude, "membersChurned": int(churned)}
        if incident.kind == "redemption_surge":
            entry |= {"thresholdDivisor": incident.magnitude}
        incidents.append(entry)
    return {
        "generator": "coalition seed (bulk)",
        "config": config.as_dict(),
        "period": {
            "start": calendar.start.isoformat(),
            "end": calendar.end.isoformat(),
            "days": calendar.days,
        },
        "bgNbd": {
            "timeUnit": "week",
            "r": config.truth.r,
            "alpha": config.truth.alpha,
            "a": config.truth.a,
            "b": config.truth.b,
            "realised": {
                "meanPurchaseRatePerWeek": float(rates.mean()) if len(rates) else 0.0,
                "meanDropoutProbability": float(dropouts.mean()) if len(dropouts) else 0.0,
                "aliveAtEnd": int(alive),
            },
            "notes": (
                "The first purchase is made at enrolment (BG/NBD's trial at time 0); repeat "
                "purchases follow a Poisson process at lambda times the network's seasonal "
                "rhythm (mean 1 over the period); campaign visits do not count toward dropout; "
                "the churn spike incident ends some members early."
            ),
        },
        "globalHoldoutBps": network.rules.global_holdout_bps,
        "merchants": [
            {
                "merchantId": str(merchant.merchant_id),
                "name": merchant.name,
                "industry": merchant.industry.name,
                "earnRate": str(merchant.earn_rate),
                "pendingDays": merchant.pending_days,
                "stores": len(merchant.store_ids),
            }
            for merchant in network.merchants
        ],
        "campaigns": campaigns,
        "incidents": incidents,
        "counts": {
            "members": sum(shard.members for shard in report.shards),
            "purchases": sum(shard.purchases for shard in report.shards),
            "transactions": transactions,
            "rows": {
                table: report.total(table)
                for table in sorted({name for shard in report.shards for name in shard.rows})
            },
            "holds": holds,
            **totals,
        },
        "memberFile": str(member_file),
        "memberFileColumns": [
            "member_id",
            "purchase_rate_per_week",
            "dropout_probability",
            "alive_at_end",
            "churned_by_spike",
        ],  # fmt: skip
        "seconds": round(report.seconds, 1),
        "rebuildSeconds": round(report.rebuild_seconds, 1),
    }


def write(report: SeedReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    member_file = path.with_name(path.stem + "-members.csv.gz")
    with gzip.open(member_file, "wt", newline="", compresslevel=1) as handle:
        writer = csv.writer(handle)
        writer.writerow(["member_id", "purchase_rate_per_week", "dropout_probability",
                         "alive_at_end", "churned_by_spike"])  # fmt: skip
        for shard in report.shards:
            writer.writerows(shard.member_truth)
    path.write_text(json.dumps(truth_document(report, member_file), indent=2) + "\n")
    return path
