"""The workspace report (`genloop report`): data, training, samples, metrics and feedback on one page."""

from genloop.report.build import Report, gather_report, render_report, write_report

__all__ = ["Report", "gather_report", "render_report", "write_report"]
