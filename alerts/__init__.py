"""Alerts: detect a developing incident in the stream of matching posts and keep one thread
per incident for the duty officer.

- `alerts.detector`: the pure math (baseline, Poisson / negative-binomial tail, level rules).
- `alerts.service`: `run_detection(settings, store, engine, now)`, the per-minute job (volume
  spikes per watchlist, silent sources).
- `alerts.store`: `AlertStore`, what the API reads and acts on (acknowledge, resolve, notes,
  claim verdicts, the SSE event log).
- `alerts.models`: the pydantic `Alert`, `AlertEvent` and `Evidence` shapes.
- `alerts.statement`: draft holding statements in zh / en / ar, every fact traced to evidence.
- `alerts.delivery`: `Notifier` — Apprise channels with retries and a delivery log.
- `alerts.links`: signed one-click acknowledge links that expire.
- `alerts.backtest`: `main(argv)`, the `yuqing alerts backtest` contract.
"""
