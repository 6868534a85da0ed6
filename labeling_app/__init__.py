"""labeling_app: collecting human comparisons (store, assignment, quality, import/export, Gradio UI)."""

__all__: list[str] = []
