"""How a token is drawn from the policy's logits: greedily, from a generator's stream, or keyed.

Keyed sampling is what training uses. The noise that picks a row's token at position t is a hash
of (the row's key, t, token id), and a row's key is a hash of (seed, step, problem, sample index
[, turn]). So a sample's tokens do not depend on which other rows share its batch, how the batch
is sharded over threads, how many rollout workers split the step, or how many steps ran in this
process (resume): only on the policy and the key. A stream (``torch.Generator``) gives none of
that: its draws depend on the order and shape of every call before.

The draw is exact either way: Gumbel-max (argmax of logits / T plus Gumbel noise made from a
uniform draw) samples softmax(logits / T); with ``top_p < 1`` the keyed path inverts the CDF of
the nucleus with one uniform per row. Each token also gets its log-prob under softmax(logits / T)
(T = 1 when greedy): the behaviour policy's, as the update scores it.
"""

from __future__ import annotations

import functools
import hashlib

import torch

_MASK = 0xFFFFFFFF
_GOLDEN, _MIX = 0x9E3779B9, 0x45D9F3B


def sample_key(*parts: object) -> int:
    """A 32-bit key from any parts, the same on every machine and Python process."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two multiply-xorshift rounds) on int64 tensors holding 32-bit
    values; the constant is below 2^27, so no product leaves int64."""
    x = ((x >> 16) ^ x) * _MIX & _MASK
    x = ((x >> 16) ^ x) * _MIX & _MASK
    return (x >> 16) ^ x


@functools.lru_cache(maxsize=8)
def _column_hashes(width: int, device: torch.device) -> torch.Tensor:
    """The hash of every column (token id): the same for every token drawn, so made once."""
    cols = torch.arange(width, device=device, dtype=torch.long)
    return _hash32(cols * _GOLDEN & _MASK)


def keyed_uniform(keys: torch.Tensor, position: int, width: int) -> torch.Tensor:
    """(rows, width) uniforms in (0, 1), float64, a function of (key, position, column) only."""
    base = _hash32((keys.long() + (position + 1) * _GOLDEN) & _MASK)
    cols = _column_hashes(width, keys.device)
    bits = _hash32((base[:, None] ^ cols[None, :]) & _MASK)
    return (bits.double() + 0.5) / 2.0**32


class Sampler:
    """``sampler(logits, rows, t) -> (tokens, logprobs)`` for the decode loops: ``rows`` are the
    indices, in the decode call's batch, of the rows whose logits these are; ``t`` the position
    in the completion. Keyed when ``keys`` (one per batch row) are given, else from ``generator``.
    """

    def __init__(
        self,
        temperature: float,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        keys: torch.Tensor | None = None,
    ) -> None:
        self.temperature, self.top_p = temperature, top_p
        self.generator, self.keys = generator, keys

    def shard(self, start: int, stop: int, generator: torch.Generator | None) -> Sampler:
        """The sampler of batch rows ``start:stop`` (a shard decoded on its own thread)."""
        keys = self.keys[start:stop] if self.keys is not None else None
        return Sampler(self.temperature, self.top_p, generator, keys)

    def __call__(
        self, logits: torch.Tensor, rows: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        temperature, top_p = self.temperature, self.top_p
        scaled = logits.float() / (temperature if temperature > 0 else 1.0)
        if temperature <= 0:
            tokens = logits.argmax(dim=-1)
        elif self.keys is not None:
            tokens = self._keyed(scaled, self.keys[rows], t)
        elif top_p >= 1.0:
            # Gumbel-max: argmax(logits / T + Gumbel noise) is an exact draw from softmax(logits
            # / T), at half the cost of softmax + multinomial on CPU.
            uniform = torch.rand(scaled.shape, generator=self.generator, device=scaled.device)
            tokens = (scaled - (-uniform.log()).log()).argmax(dim=-1)
        else:
            sorted_p, order = self._nucleus(scaled)
            probs = torch.zeros_like(scaled).scatter(-1, order, sorted_p)
            tokens = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        logp = torch.log_softmax(scaled, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return tokens, logp

    def _keyed(self, scaled: torch.Tensor, keys: torch.Tensor, t: int) -> torch.Tensor:
        if self.top_p >= 1.0:
            gumbel = -(-keyed_uniform(keys, t, scaled.shape[-1]).log()).log()
            return (scaled.double() + gumbel).argmax(dim=-1)
        probs, order = self._nucleus(scaled)
        u = keyed_uniform(keys, t, 1).to(probs.dtype)
        cdf = probs.cumsum(dim=-1)
        pick = (cdf < u * cdf[:, -1:]).sum(dim=-1, keepdim=True).clamp(max=probs.shape[-1] - 1)
        return order.gather(-1, pick).squeeze(-1)

    def _nucleus(self, scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nucleus's probabilities in descending order (zeros past it), and the order."""
        sorted_p, order = torch.softmax(scaled, dim=-1).sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(dim=-1) - sorted_p < self.top_p
        return sorted_p * keep, order
