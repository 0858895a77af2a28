"""Built-in vlm-adapters plugin for Gemma 3 (registered through an entry point)."""
