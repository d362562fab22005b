"""Where customers' messages come in: one module per channel."""
