"""Mixtures: plan tokens per source and phase, tokenise, apply FIM, pack into phase streams."""
