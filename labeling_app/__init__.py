"""labeling_app: collecting human comparisons.

The store (`LabelStore`: SQLite, transactions, no lost label), assignment (k labels per pair from
distinct labelers, gold pairs, a priority hook that the caller supplies), quality (agreement, gold
accuracy), export (a TRL-ready dataset), the Gradio UI (`build_app(store, config)`) and simulated
labelers that label through the app's own API (`simulate`). Importing this package is light: Gradio
loads with `build_app`. It imports `foundation` only: never a trainer or a reward model.
"""

from labeling_app.client import LabelingClient, SimulationResult, simulate
from labeling_app.config import AppConfig
from labeling_app.errors import AuthError, LabelingError, NotAssignedError
from labeling_app.export import ExportSummary, aggregate, export_dataset
from labeling_app.quality import label_stats
from labeling_app.store import CHOICES, Assignment, Label, LabelStore, Pair

__all__ = [
    "LabelStore", "Pair", "Assignment", "Label", "CHOICES", "AppConfig", "build_app",
    "LabelingError", "NotAssignedError", "AuthError",
    "label_stats", "aggregate", "export_dataset", "ExportSummary",
    "LabelingClient", "simulate", "SimulationResult",
]


def build_app(store: LabelStore, config: AppConfig | None = None):
    """The Gradio app over `store` (see labeling_app.app)."""
    from labeling_app.app import build_app as _build

    return _build(store, config)
