"""Base models: loading from any source, family detection, LoRA injection and formats."""
