"""Two small verifiers plugins that let verifiers 0.4's own episode loop run here, offline.

- ``RlvrChatHarness``: the model's side of a chat taskset, run in-process. verifiers' ``null``
  harness does the same job as a program: it prepares a script with ``uv`` (which downloads
  ``uv`` itself, then ``openai``, ``mcp``, ``httpx``... from the package index, in every new
  process) and runs it in a subprocess that talks to the interception proxy. On a machine
  without network that cannot start. The harness contract allows an in-process loop ("the
  interception is the contract, not the process"): this one sends the conversation to the
  rollout's interception endpoint, once per segment, and returns. Everything else (the
  interception, the train client's rendering, the trace, the task's scoring, an ``Env``'s
  multi-turn loop) is verifiers' own. No tools (MCP): a taskset whose tasks need tools needs a
  real harness (``env.options.harness``).
- ``PlainRenderer``: a ``renderers`` renderer for tokenizers without a chat template (rlvr's
  embedded model, base models), in the format rlvr's own episodes use (``rollout.episodes``):
  the first user turn as it is, each later user or tool turn as ``<obs>text</obs>``, an
  assistant turn closed by EOS. It bridges to the next turn by appending, so the token sequence
  of a multi-turn episode is append-only: what was sampled stays exactly as sampled.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import verifiers.v1 as vf
from renderers.base import ParsedResponse, RenderedTokens
from renderers.configs import BaseRendererConfig
from verifiers.v1.dialects.chat import message_to_wire

OBS_OPEN, OBS_CLOSE = "<obs>", "</obs>"


class RlvrChatHarnessConfig(vf.HarnessConfig):
    timeout_s: float = 600.0
    """Seconds one model call may take (the batch it joins is decoded with the others)."""


class RlvrChatHarness(vf.Harness[RlvrChatHarnessConfig]):
    """One chat completion per segment through the interception endpoint, in-process."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True  # a later segment relaunches on the accreted conversation
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
        **_: Any,
    ) -> vf.ProgramResult:
        system, prompt = self.resolve_prompt(data)
        messages: list[dict] = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt:
            messages += [message_to_wire(m) for m in prompt]
        async with httpx.AsyncClient(timeout=self.config.timeout_s) as http:
            reply = await http.post(
                f"{endpoint.rstrip('/')}/chat/completions",
                headers={"Authorization": f"Bearer {secret}"},
                json={"model": ctx.model, "messages": messages},
            )
        if reply.status_code != 200:
            return vf.ProgramResult(1, "", f"model call failed ({reply.status_code}): {reply.text}")
        content = reply.json()["choices"][0]["message"].get("content") or ""
        return vf.ProgramResult(0, content, "")


class PlainRendererConfig(BaseRendererConfig):
    name: Literal["rlvr_plain"] = "rlvr_plain"


class PlainRenderer:
    """Messages <-> token ids without a chat template (see the module docstring)."""

    config_class = PlainRendererConfig
    supports_tools = False

    def __init__(self, tokenizer: Any, config: PlainRendererConfig | None = None) -> None:
        self.tokenizer, self.config = tokenizer, config or PlainRendererConfig()
        self.eos = tokenizer.eos_token_id

    @property
    def is_prefix_stable(self) -> bool:
        return True

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _message_ids(self, message: dict, first_user: bool) -> list[int]:
        role, content = message.get("role"), message.get("content") or ""
        if isinstance(content, list):  # content parts: their text
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role == "assistant":
            return self._encode(content) + [self.eos]
        if role == "system":
            return self._encode(content + "\n")
        if role == "user" and first_user:
            return self._encode(content)
        return self._encode(f"{OBS_OPEN}{content}{OBS_CLOSE}")

    def render(
        self, messages: list[dict], *, tools: Any = None, add_generation_prompt: bool = False
    ) -> RenderedTokens:
        ids: list[int] = []
        owner: list[int] = []
        seen_user = False
        for i, message in enumerate(messages):
            part = self._message_ids(message, first_user=not seen_user)
            seen_user = seen_user or message.get("role") == "user"
            ids += part
            owner += [i] * len(part)
        roles = [str(m.get("role")) for m in messages]
        return RenderedTokens(token_ids=ids, message_indices=owner, message_roles=roles)

    def render_ids(self, messages: list[dict], **kwargs: Any) -> list[int]:
        return self.render(messages, **kwargs).token_ids

    def bridge_to_next_turn(
        self,
        previous_prompt_ids: list[int],
        previous_completion_ids: list[int],
        new_messages: list[dict],
        *,
        tools: Any = None,
        **_: Any,
    ) -> RenderedTokens:
        """The previous tokens exactly as they are, then the new turns; a completion cut off
        before EOS is closed with one (scaffold, never trained on)."""
        ids = list(previous_prompt_ids) + list(previous_completion_ids)
        if not previous_completion_ids or previous_completion_ids[-1] != self.eos:
            ids.append(self.eos)
        owner = [-1] * len(ids)
        for i, message in enumerate(new_messages):
            part = self._message_ids(message, first_user=False)
            ids += part
            owner += [i] * len(part)
        roles = [str(m.get("role")) for m in new_messages]
        return RenderedTokens(token_ids=ids, message_indices=owner, message_roles=roles)

    def parse_response(
        self, token_ids: list[int], *, tools: Any = None, prompt_ids: Any = None
    ) -> ParsedResponse:
        ids = list(token_ids)
        if ids and ids[-1] == self.eos:
            ids = ids[:-1]
        return ParsedResponse(content=self.tokenizer.decode(ids, skip_special_tokens=True))

    def get_stop_token_ids(self) -> list[int]:
        return [self.eos]


def renderer_config(spec: str | dict | None, has_chat_template: bool) -> Any:
    """The ``renderers`` config for ``env.options.renderer``: ``rlvr`` (``PlainRenderer``),
    ``default`` (the tokenizer's chat template), ``auto`` (renderers' own choice by model
    name), or a renderers config dict. None: ``auto`` with a chat template, else ``rlvr``."""
    from pydantic import TypeAdapter
    from renderers.configs import (
        AutoRendererConfig,
        CustomRendererConfig,
        DefaultRendererConfig,
        RendererConfig,
    )

    if spec is None:
        spec = "auto" if has_chat_template else "rlvr"
    if isinstance(spec, dict):
        return TypeAdapter(RendererConfig).validate_python(spec)
    if spec == "rlvr":
        return CustomRendererConfig(import_path="rlvr.integrations.vf_chat.PlainRenderer")
    if spec == "default":
        return DefaultRendererConfig()
    if spec == "auto":
        return AutoRendererConfig()
    raise ValueError(
        f"env.options.renderer must be rlvr, default, auto or a renderers config, got {spec!r}"
    )
