"""Built-in vlm-adapters plugin for the qwen family (registered through an entry point)."""
