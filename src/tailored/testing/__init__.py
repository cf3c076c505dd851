"""Reusable test suites and data: run ``RecommenderContract`` against every model; find
where a user id is still stored with ``rows_holding`` and ``files_holding``."""

from tailored.testing.contract import RecommenderContract
from tailored.testing.data import checkerboard, group_of
from tailored.testing.traces import files_holding, rows_holding

#: The base URL for a test client of the app (``TestClient(app, base_url=LOCAL)``): a
#: service without API keys answers only requests made on this machine, and a test
#: client's default host (``testserver``) is not one.
LOCAL = "http://127.0.0.1"

__all__ = ["LOCAL", "RecommenderContract", "checkerboard", "files_holding", "group_of",
           "rows_holding"]
