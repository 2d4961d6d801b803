"""Monitoring: keep watching what recon found, and say what changed.

watch.py       the recon_scan job: the scan, then what changed (changes.py), then notifications
changes.py     observations in, events out (new, changed, gone after GONE_AFTER_MISSING_RUNS misses)
events.py      the timeline, as JSON
scheduler.py   scheduled rescans and the periodic tick (due scans, clean-up, notifications)
retention.py   what is past its keeping time goes
notify/        channels (webhook, Slack, Discord, Telegram, e-mail), the outbox, senders
overview.py    the dashboard's numbers; metrics.py: Prometheus metrics of AssetMon itself
"""
