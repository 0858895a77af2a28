"""Built-in vlm-adapters plugin for the deepseek family (registered through an entry point)."""
