"""What the labeling pages and the API share: text made safe to show (Markdown that loads nothing and
shows any HTML as text), chat turns as the conversation pane shows them, the logged-in user of a
request, and handlers whose refusals become messages on screen."""

import html
import re
from typing import Optional

import gradio as gr

from labeling_app.errors import LabelingError
from labeling_app.security import refusal_title

__all__ = ["escape_markdown", "turn", "text_of", "user_of", "guarded"]

_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]*`)", re.S)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\s*(\([^)\n]*\)|\[[^\]\n]*\])?")


def _no_images(text: str) -> str:
    """Markdown images become their alt text (`![cat](http://host/p.png)` -> `[image: cat]`), so that no
    pair text makes a labeler's browser fetch anything: an image URL in a prompt would track labelers."""
    alt_text = _IMAGE.sub(lambda m: f"[image: {m.group(1).strip() or 'no description'}]", text)
    return alt_text.replace("![", "!\\[")


def escape_markdown(text: str) -> str:
    """Markdown that shows any HTML in `text` as text (`<`, `>` and `&` escaped outside code; inside code
    blocks and spans the Markdown renderer escapes them itself) and loads nothing: images are shown as
    their alt text."""
    parts = _CODE.split(text)
    return "".join(p if i % 2 else html.escape(_no_images(p), quote=False) for i, p in enumerate(parts))


def turn(message: dict) -> dict:
    """A chat turn as the conversation pane shows it: a system prompt marked as such (the pane has
    user and assistant sides only), every text escaped."""
    content = escape_markdown(message["content"])
    if message["role"] == "system":
        return {"role": "user", "content": f"**System prompt:** {content}"}
    return {"role": message["role"], "content": content}


def text_of(messages: list[dict]) -> str:
    """A response (or any message list) as one text, turns apart by a blank line."""
    return "\n\n".join(m["content"] for m in messages)


def user_of(request: Optional[gr.Request]) -> str:
    user = getattr(request, "username", None)
    if not user:
        raise gr.Error("Please log in.")
    return user


def guarded(fn):
    """Run a handler; a refusal from the store becomes a message on screen, never a crash, titled by
    its kind (the API answers it with that kind's 4xx/503 status: `security.RefusalStatus`)."""
    try:
        return fn()
    except LabelingError as e:
        raise gr.Error(str(e), title=refusal_title(e), print_exception=False) from None
