"""The training stages: SFT, the GRPO loop, rejection sampling."""
