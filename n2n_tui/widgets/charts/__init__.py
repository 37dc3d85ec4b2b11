from .braille import Line, render_chart
from .chart import Chart, ChartLegend

__all__ = ["Chart", "ChartLegend", "Line", "render_chart"]
