from .panels import MetricCharts, ReplayBar, RunHeader, RunValues

__all__ = ["MetricCharts", "ReplayBar", "RunHeader", "RunValues"]
