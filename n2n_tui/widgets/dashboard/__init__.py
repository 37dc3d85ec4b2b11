from .panels import MetricCharts, ReplayBar, RunHeader, RunValues
from .system import SysLine, SysTable

__all__ = ["MetricCharts", "ReplayBar", "RunHeader", "RunValues", "SysLine", "SysTable"]
