"""Yuqing (舆情): public-opinion monitoring and early warning.

This package holds what every stage shares and nothing stage-specific: configuration
(`yuqing.config`), the records that flow between stages (`yuqing.records`), document ids and
pseudonymisation (`yuqing.ids`), the operational state database (`yuqing.state`), and the
process wiring and CLI (`yuqing.cli`, `yuqing.runner`, `yuqing.worker`, `yuqing.scheduler`).
"""

__version__ = "0.1.0"
