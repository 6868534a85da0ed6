"""The Gradio labeling UI and its API. `build_app(store, config)` takes its dependencies (no module
globals); the handlers are plain functions of (store, user, inputs) that tests call directly; the
layout maps them onto components. `launch()` happens only in the entry point (`align label serve`).

API endpoints (through `gradio_client.Client(url, auth=(user, password))`, or a direct
`POST /gradio_api/run/<name>` with the login cookie):

    /next_pair                                   -> {"pair_id", "prompt", "response_a", "response_b"} | None
    /submit_label (pair_id, choice, strength, rationale) -> {"label_id", "pair_id", "stored": True}

`prompt` is the conversation (a list of {"role", "content"}); `response_a`/`response_b` are the texts
as shown to that labeler (left, right); `choice` is "A", "B", "tie" or "both_bad" as shown. The rating
and ranking endpoints and tabs are in `task_api.py` and `task_pages.py`.
"""

import html
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import gradio as gr

from labeling_app.config import AppConfig
from labeling_app.errors import LabelingError
from labeling_app.store import CHOICES, STRENGTHS, Assignment, LabelStore
from labeling_app.task_api import register_task_api
from labeling_app.task_pages import task_tabs, wire_task_events
from labeling_app.ui import escape_markdown, guarded, text_of, turn, user_of

__all__ = ["build_app", "launch_options", "PairView", "show_next", "record_preference", "undo_last",
           "skip_pair", "next_pair_api", "submit_label_api", "admin_view", "labels_over_time",
           "unlock_account", "escape_markdown"]

CHOICE_LABELS = {"A": "A is better (1)", "B": "B is better (2)", "tie": "Tie (3)", "both_bad": "Both bad (4)"}
STRENGTH_LABELS = {s: f"{name} ({key})" for (s, name), key in zip(STRENGTHS.items(), "qwer")}

SHORTCUTS = ("**Keys:** `1` A better · `2` B better · `3` tie · `4` both bad · `q` `w` `e` `r` strength "
             "(negligibly → significantly) · `Enter` submit · `u` undo · `s` skip")

KEYBOARD_JS = """
<script>
document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "radio"))) return;
  const shown = (el) => el && el.offsetParent !== null;       // only the visible tab's controls
  const pick = (id, i) => {                                    // the group's box: Gradio hides the inputs
    const r = document.querySelectorAll("#" + id + " input[type=radio]");
    if (r[i] && shown(document.getElementById(id))) { r[i].click(); e.preventDefault(); }
  };
  const press = (...ids) => {
    const b = ids.map((id) => document.getElementById(id)).find((x) => shown(x) && !x.disabled);
    if (b) { b.click(); e.preventDefault(); }
  };
  if ("1234".includes(e.key)) pick("choice", Number(e.key) - 1);
  else if ("qwer".includes(e.key)) pick("strength", "qwer".indexOf(e.key));
  else if (e.key === "g" || e.key === "b") pick("rating", e.key === "g" ? 0 : 1);
  else if (e.key === "Enter") press("submit-btn", "rate-submit-btn", "rank-submit-btn");
  else if (e.key === "u") press("undo-btn", "rate-undo-btn", "rank-undo-btn");
  else if (e.key === "s") press("skip-btn", "rate-skip-btn", "rank-skip-btn");
});
</script>
"""

CSS = """
#conversation button[aria-label="Clear"], #conversation button[title="Clear"] { display: none !important; }
#response-left, #response-right { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 8px 12px; }
#response-left pre, #response-right pre { white-space: pre-wrap; }
"""

@dataclass
class PairView:
    """What the labeling page shows; `pair_id` None means the queue is empty for this labeler."""

    pair_id: str | None
    conversation: list[dict]
    left: str
    right: str
    status: str

    @classmethod
    def of(cls, a: Assignment | None, store: LabelStore, user: str, note: str = ""):
        done, left = store.progress(user)
        status = f"{note + ' · ' if note else ''}Labeled today: **{done}** · left in the queue: **{left}**"
        if a is None:
            return cls(None, [], "", "", f"{_empty_queue(store.loop_status())} {status}")
        conversation = [turn(m) for m in a.prompt]
        left, right = (escape_markdown(text_of(side)) for side in (a.left, a.right))
        return cls(a.pair_id, conversation, left, right, status)


def _empty_queue(loop: dict | None) -> str:
    """What an empty queue says: while a loop runs, that the next batch is on its way."""
    if loop and loop.get("stage") in ("label", "evaluate"):
        return (f"⏳ Others hold the last pairs of this batch (round {loop['round']} of {loop['rounds']}); "
                f"the next batch follows once the model has trained on it. Press Skip or reload in a few "
                f"minutes — thank you!")
    if loop and loop.get("stage") not in (None, "finished"):
        return (f"⏳ The next batch is being prepared (round {loop['round']} of {loop['rounds']}: "
                f"{STAGE_NAMES.get(loop['stage'], loop['stage'])}). Press Skip or reload in a few minutes — "
                f"thank you!")
    return ("🎉 Nothing left to label for you right now — thank you! Come back later or ask an admin for "
            "more pairs.")


STAGE_NAMES = {"generate": "the model writes new answers", "select": "choosing pairs",
               "label": "labeling", "reward": "training the reward model", "policy": "training the model",
               "evaluate": "comparing the new model with the last one"}


def loop_summary(loop: dict | None) -> str:
    """The admin page's view of a loop driving the store: round, stage, labels still wanted, and each
    round's labelers' win rate (as it fills)."""
    if not loop:
        return ""
    stage = "finished" if loop["stage"] == "finished" else STAGE_NAMES.get(loop["stage"], loop["stage"])
    lines = [f"**Loop:** round {loop['round']} of {loop['rounds']}, {stage}; "
             f"{loop.get('labels_wanted', 0)} labels still wanted."]
    for r, comparisons in sorted(loop.get("evaluations", {}).items(), key=lambda kv: int(kv[0])):
        parts = [f"vs {name}: {c['win_rate']:.2f} [{c['interval'][0]:.2f}, {c['interval'][1]:.2f}] over "
                 f"{c['labels']} labels ({c['stopped']})" for name, c in comparisons.items()]
        lines.append(f"Round {r}, labelers' win rate of the new model: " + "; ".join(parts))
    return "\n\n".join(lines) + "\n\n"


# -- handlers: plain functions, called by the UI events and by tests ---------------------------------

def show_next(store: LabelStore, config: AppConfig, user: str, note: str = "") -> PairView:
    return PairView.of(store.next_assignment(user, batch=config.batch), store, user, note)


def record_preference(store: LabelStore, config: AppConfig, user: str, pair_id: str | None,
                      choice: str | None, strength: int | None, rationale: str = "") -> PairView:
    """The one submit path for every button and key. Raises LabelingError with what to fix."""
    if not pair_id:
        raise LabelingError("there is no pair on screen to label.")
    if choice not in CHOICES:
        raise LabelingError("choose A better, B better, tie or both bad first (keys 1-4).")
    if strength is None:
        if choice in ("A", "B"):
            raise LabelingError("choose how much better (keys q w e r) before submitting.")
        strength = 1
    label = store.submit(user, pair_id, choice, int(strength), rationale or "")
    return show_next(store, config, user, note=f"Saved label #{label.id}")


def undo_last(store: LabelStore, config: AppConfig, user: str) -> PairView:
    label = store.undo(user)
    return show_next(store, config, user, note="Undone: label it again" if label else "Nothing to undo")


def skip_pair(store: LabelStore, config: AppConfig, user: str, pair_id: str | None) -> PairView:
    if pair_id:
        store.skip(user, pair_id)
    return show_next(store, config, user, note="Skipped")


def next_pair_api(store: LabelStore, config: AppConfig, user: str) -> dict | None:
    a = store.next_assignment(user, batch=config.batch)
    if a is None:
        return None
    return {"pair_id": a.pair_id, "prompt": a.prompt, "response_a": text_of(a.left),
            "response_b": text_of(a.right)}


def submit_label_api(store: LabelStore, user: str, pair_id: str, choice: str, strength: int,
                     rationale: str = "", request_id: str | None = None) -> dict:
    """Types are checked strictly (`strength` an integer 1-4, `rationale` text); a retry with the same
    `request_id` returns the label first stored for it."""
    label = store.submit(user, pair_id, choice, strength, rationale, request_id=request_id or None)
    return {"label_id": label.id, "pair_id": label.pair_id, "stored": True}


def admin_view(store: LabelStore, user: str) -> tuple:
    """(summary markdown, per-labeler rows, labels-per-hour rows, locked accounts, labels over time per
    labeler for the plot); admins only."""
    from labeling_app.quality import agreement_text, label_stats
    from labeling_app.task_export import format_task_stats, task_stats

    store.accounts.require_admin(user)
    s = label_stats(store)
    tasks = format_task_stats(task_stats(store)).strip()      # ratings and rankings, when there are some
    summary = (loop_summary(store.loop_status()) +
               f"**{s['labels']}** labels ({s['retractions']} retracted) on **{s['pairs']}** pairs "
               f"(+{s['gold_pairs']} gold); **{s['pairs_completed']}** completed at k = {s['k']}; "
               f"{s['labels_needed']} labels still needed.\n\n"
               f"{agreement_text(s, bold='**')} "
               f"· left-pick share **{s['position_bias_left']}** (0.5 = no position bias)\n\n"
               "Labels per day: " + (", ".join(f"{d}: {n}" for d, n in s["per_day"].items()) or "none yet") +
               "".join(f"\n\n{line.strip()}" for line in tasks.splitlines()))
    rows = [[name, e["labels"], e["seconds_median"], e["agreement_with_majority"], e["gold_accuracy"]]
            for name, e in s["per_labeler"].items()]
    hours = [[h, n] for h, n in s["per_hour"].items()]
    locked = [[name, time.strftime("%Y-%m-%d %H:%M", time.localtime(until)), reason]
              for name, _, until, reason in store.accounts.lockouts()]
    return summary, rows, hours, locked or [["(none)", "", ""]], labels_over_time(store)


def labels_over_time(store: LabelStore):
    """Live labels per labeler and hour, cumulative from 0 in the hour before each one's first label (so
    that a labeler with one hour of labels still draws a line): a table for the admin page's plot."""
    import pandas as pd

    labels = store.labels()
    if not labels:
        return pd.DataFrame({"hour": pd.Series(dtype="datetime64[ns]"), "labels": [], "labeler": []})
    frame = pd.DataFrame({"hour": pd.to_datetime([lab.created_at for lab in labels], unit="s").floor("h"),
                          "labeler": [lab.labeler for lab in labels]})
    counts = (frame.groupby(["labeler", "hour"]).size().groupby(level=0).cumsum()
              .rename("labels").reset_index())
    starts = counts.groupby("labeler", as_index=False)["hour"].min()
    starts = starts.assign(hour=starts["hour"] - pd.Timedelta(hours=1), labels=0)
    return pd.concat([starts, counts]).sort_values(["labeler", "hour"], kind="stable").reset_index(drop=True)


def unlock_account(store: LabelStore, user: str, name: str) -> str:
    """Lift a lockout from the admin page; admins only."""
    store.accounts.require_admin(user)
    name = (name or "").strip()
    if not name:
        raise LabelingError("type the name of the account to unlock.")
    if store.accounts.unlock(name):
        return f"Unlocked **{html.escape(name)}**."
    return f"{html.escape(name)} was not locked."


EXPORT_PREFIX = "align-export-"
EXPORT_LIFETIME = 600


def export_zip(store: LabelStore, user: str, min_labels: int = 1) -> str:
    """Export (admins only) into a private temporary folder and zip it; returns the zip's path. The
    folder is removed a minute later (Gradio serves its own copy, which only admins may download:
    `labeling_app.security.AdminFiles`, and which it deletes after `EXPORT_LIFETIME` seconds)."""
    import shutil
    import threading

    from labeling_app.export import export_dataset

    store.accounts.require_admin(user)
    out = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX))           # mode 0700
    export_dataset(store, out / "export", min_labels=min_labels)
    name = out / f"{EXPORT_PREFIX}labels-{time.strftime('%Y%m%d-%H%M%S')}"
    archive = Path(shutil.make_archive(str(name), "zip", out / "export"))
    archive.chmod(0o600)
    shutil.rmtree(out / "export")
    timer = threading.Timer(60.0, shutil.rmtree, args=(out,), kwargs={"ignore_errors": True})
    timer.daemon = True
    timer.start()
    return str(archive)


# -- layout ---------------------------------------------------------------------------------------

def _page(view: PairView):
    """The labeling panel's outputs for one view (`LabelingPanel.outputs` order)."""
    has = view.pair_id is not None
    return (view.pair_id, view.conversation, view.left, view.right, view.status,
            gr.update(visible=has), gr.update(value=None), gr.update(value=None), gr.update(value=""))


def _response_column(title: str, elem_id: str):
    with gr.Column():
        gr.Markdown(f"### {title}")
        return gr.Markdown(elem_id=elem_id, max_height=480, sanitize_html=True, latex_delimiters=[])


def labeling_panel(config: AppConfig, status) -> SimpleNamespace:
    """The labeling page: guidelines, the conversation, responses A and B, the choice, strength,
    rationale and the buttons. Returns its components; `status` is the page's status line."""
    ui = SimpleNamespace(pair_id=gr.State(None))
    with gr.Column(visible=True, elem_id="labeling") as ui.column:
        with gr.Accordion("Guidelines", open=False):
            gr.Markdown(config.guidelines)
        gr.Markdown(SHORTCUTS)
        with gr.Column(elem_id="pair") as ui.pair_box:
            # From its start (no autoscroll to the bottom): the opening question stays in view.
            ui.conversation = gr.Chatbot(label="Conversation", elem_id="conversation", height=420,
                                         max_height=720, resizable=True, autoscroll=False,
                                         sanitize_html=True, allow_tags=False,
                                         latex_delimiters=[], buttons=[], feedback_options=None,
                                         group_consecutive_messages=False)
            with gr.Row(equal_height=False):
                ui.left = _response_column("Response A", "response-left")
                ui.right = _response_column("Response B", "response-right")
            ui.choice = gr.Radio([(v, k) for k, v in CHOICE_LABELS.items()], label="Which is better?",
                                 elem_id="choice")
            ui.strength = gr.Radio([(v, k) for k, v in STRENGTH_LABELS.items()], label="How much better?",
                                   elem_id="strength")
            ui.rationale = gr.Textbox(label="Rationale (optional)", lines=2, max_lines=6, elem_id="rationale")
            with gr.Row():
                ui.submit = gr.Button("Submit (Enter)", variant="primary", elem_id="submit-btn")
                ui.skip = gr.Button("Skip (s)", elem_id="skip-btn")
                ui.undo = gr.Button("Undo last (u)", elem_id="undo-btn")
    ui.outputs = [ui.pair_id, ui.conversation, ui.left, ui.right, status, ui.pair_box, ui.choice, ui.strength,
                  ui.rationale]
    return ui


def admin_panel() -> SimpleNamespace:
    """The admin page (admins only): queue progress and agreement, labels over time per labeler, the
    per-labeler and per-hour tables, locked accounts with an unlock action, the export."""
    ui = SimpleNamespace()
    with gr.Column(visible=False, elem_id="admin") as ui.column:
        gr.Markdown("## Admin")
        ui.summary = gr.Markdown(elem_id="admin-summary")
        ui.over_time = gr.LinePlot(x="hour", y="labels", color="labeler", elem_id="admin-over-time",
                                   label="Labels over time (cumulative)")
        ui.per_labeler = gr.Dataframe(headers=["labeler", "labels", "median s", "agreement with majority",
                                               "gold accuracy"], interactive=False, label="Per labeler")
        ui.per_hour = gr.Dataframe(headers=["hour", "labels"], interactive=False, label="Labels per hour")
        ui.lockouts = gr.Dataframe(headers=["locked account", "until", "why"], interactive=False,
                                   label="Locked accounts", elem_id="admin-lockouts")
        with gr.Row():
            ui.unlock_name = gr.Textbox(label="Account to unlock", elem_id="admin-unlock-name")
            ui.unlock = gr.Button("Unlock", elem_id="admin-unlock")
        ui.unlock_status = gr.Markdown()
        with gr.Row():
            ui.refresh = gr.Button("Refresh", elem_id="admin-refresh")
            ui.export = gr.Button("Export dataset (zip)", variant="primary", elem_id="admin-export")
        ui.export_file = gr.File(label="The export to download: Hugging Face dataset + JSONL + card",
                                 interactive=False, elem_id="admin-export-file")
    ui.outputs = [ui.summary, ui.per_labeler, ui.per_hour, ui.lockouts, ui.over_time]
    return ui


def wire_events(app, store: LabelStore, config: AppConfig, page: SimpleNamespace, admin: SimpleNamespace,
                who) -> None:
    """Connect the buttons and the page load to the handlers (`record_preference`, `undo_last`, ...)."""
    quick = {"concurrency_limit": None, "api_visibility": "undocumented"}

    def on_load(request: gr.Request):
        """A labeler gets the next pair; an admin gets the admin page only (no claim on any pair)."""
        user = user_of(request)
        is_admin = store.accounts.role(user) == "admin"
        if is_admin:
            view, stats = PairView(None, [], "", "", "Admin view: labels, agreement, lockouts and the export "
                                                     "are below."), admin_view(store, user)
        else:
            # a labeler never sees the admin page: its components get empty values
            view, stats = guarded(lambda: show_next(store, config, user)), ("", [], [], [], None)
        return (*_page(view), f"Signed in as **{html.escape(user)}** "
                              f"({'admin' if is_admin else 'labeler'}) · "
                              f"[log out](/logout)", gr.update(visible=is_admin),
                gr.update(visible=not is_admin), *stats)

    def on_choice(choice: Optional[str]):
        """Strength means nothing for a tie or "both bad": off (and cleared) for those, on otherwise."""
        if choice in ("tie", "both_bad"):
            return gr.update(interactive=False, value=None)
        return gr.update(interactive=True)

    def on_submit(p: Optional[str], c: Optional[str], st: Optional[int], r: Optional[str],
                  request: gr.Request):
        return _page(guarded(lambda: record_preference(store, config, user_of(request), p, c, st, r)))

    def on_undo(request: gr.Request):
        return _page(guarded(lambda: undo_last(store, config, user_of(request))))

    def on_skip(p: Optional[str], request: gr.Request):
        return _page(guarded(lambda: skip_pair(store, config, user_of(request), p)))

    def on_refresh(request: gr.Request):
        return guarded(lambda: admin_view(store, user_of(request)))

    def on_unlock(name: Optional[str], request: gr.Request):
        status = guarded(lambda: unlock_account(store, user_of(request), name or ""))
        return status, *admin_view(store, user_of(request))

    def on_export(request: gr.Request):
        return guarded(lambda: export_zip(store, user_of(request)))

    app.load(on_load, None, [*page.outputs, who, admin.column, page.column, *admin.outputs], **quick)
    page.choice.change(on_choice, page.choice, page.strength, **quick)
    page.submit.click(on_submit, [page.pair_id, page.choice, page.strength, page.rationale], page.outputs,
                      **quick)
    page.undo.click(on_undo, None, page.outputs, **quick)
    page.skip.click(on_skip, [page.pair_id], page.outputs, **quick)
    admin.refresh.click(on_refresh, None, admin.outputs, **quick)
    admin.export.click(on_export, None, admin.export_file, **quick)
    admin.unlock.click(on_unlock, admin.unlock_name, [admin.unlock_status, *admin.outputs], **quick)


def register_api(store: LabelStore, config: AppConfig) -> None:
    """The two named endpoints for tools and simulated labelers: `/next_pair` and `/submit_label`."""
    # Async: the store calls take well under a millisecond, and running them on the event loop
    # saves a thread hop per request (about a third of the server's time at 50 labelers).
    async def next_pair(request: gr.Request) -> Optional[dict]:
        """The next pair for the signed-in labeler, as shown to them, or None when none is left."""
        return guarded(lambda: next_pair_api(store, config, user_of(request)))

    async def submit_label(pair_id: str, choice: str, strength: int, rationale: str = "",
                           request_id: Optional[str] = None, request: Optional[gr.Request] = None) -> dict:
        """Store a label (choice as shown: A = left); returns once it is committed. `request_id`: any
        string unique per label; a retry with it returns the original label instead of an error."""
        return guarded(lambda: submit_label_api(store, user_of(request), pair_id, choice, strength,
                                                 rationale, request_id))

    gr.api(next_pair, api_name="next_pair", queue=False, concurrency_limit=None)
    gr.api(submit_label, api_name="submit_label", queue=False, concurrency_limit=None)


def build_app(store: LabelStore, config: AppConfig | None = None):
    """The Gradio Blocks app over `store`. Launch with `app.launch(**launch_options(store, config))`."""
    config = config or AppConfig()
    # Gradio's cached copies of served files (the admin's export) are deleted after EXPORT_LIFETIME s.
    with gr.Blocks(title=config.title, delete_cache=(EXPORT_LIFETIME, EXPORT_LIFETIME)) as app:
        with gr.Row():
            gr.Markdown(f"## {html.escape(config.title)}")
            who = gr.Markdown("", elem_id="who")
        status = gr.Markdown("", elem_id="status")
        with gr.Tabs():
            with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
                page = labeling_panel(config, status)
            rate, rank = task_tabs()                 # shown where the store holds ratings or rankings
        admin = admin_panel()
        wire_events(app, store, config, page, admin, who)
        wire_task_events(app, store, config, rate, rank)
        register_api(store, config)
        register_task_api(store, config)
    app.queue(default_concurrency_limit=None)
    return app


def launch_options(store: LabelStore, config: AppConfig | None = None) -> dict[str, Any]:
    """Keyword arguments for `app.launch()`: login against the store, limited per account and per
    client (`labeling_app.security`), the keyboard script, the style; no uploads (the app takes none)."""
    from starlette.middleware import Middleware

    from labeling_app.security import (
        AdminFiles,
        ClientLoginLimit,
        ContentSecurityPolicy,
        LoginGuard,
        RefusalStatus,
    )

    config = config or AppConfig()
    guard = LoginGuard(store, account_failures=config.login_failures,
                       client_failures=config.client_login_failures, window=config.login_window,
                       lockout=config.lockout_seconds)
    return {"auth": guard.authenticate, "auth_message": "Sign in with the account an admin made for you.",
            "head": KEYBOARD_JS, "css": CSS, "max_threads": config.max_threads, "footer_links": [],
            "show_error": True, "ssr_mode": False, "max_file_size": 1,
            "app_kwargs": {"middleware": [Middleware(ContentSecurityPolicy), Middleware(RefusalStatus),
                                          Middleware(ClientLoginLimit, guard=guard),
                                          Middleware(AdminFiles, store=store, marker=EXPORT_PREFIX)]}}

