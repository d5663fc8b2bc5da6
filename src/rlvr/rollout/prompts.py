"""How a task's prompt string becomes the text the policy continues.

With a chat template (an instruct model), the prompt is a user turn, after an optional system
prompt, with the generation prompt appended; without one (the embedded model, base models), the
prompt is used raw. SFT and rollouts both go through here, so they always agree.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id that pads batches: the tokenizer's pad token, or EOS when it has none (most base
    models), which the attention and loss masks then hide."""
    pad = tokenizer.pad_token_id
    return pad if pad is not None else tokenizer.eos_token_id


def format_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    system_prompt: str | None = None,
    use_chat_template: bool | None = None,
) -> str:
    """``use_chat_template=None`` means: when the tokenizer has one."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if use_chat_template is None:
        use_chat_template = has_template
    if not use_chat_template:
        return prompt
    if not has_template:
        raise ValueError("use_chat_template is true but the tokenizer has no chat_template")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
