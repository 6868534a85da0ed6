"""`align loop`, the whole loop in rounds: `config.py` (LoopConfig and its per-stage sections),
`stages.py` (a round's six stages, one function each), `run.py` (what they share, and the driver),
`state.py` (`loop_state.json`), `report.py` (terminal lines, report.md/html/png), `prompts.py` (which
prompts each round asks)."""

from align.loop.config import LoopConfig

__all__ = ["LoopConfig", "run_loop"]


def run_loop(config: LoopConfig) -> None:
    """Run (or resume) the loop as `config` says (imports the training stack lazily)."""
    from align.loop.run import run_loop as _run

    _run(config)
