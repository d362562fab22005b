"""The support agents' console: the queue, conversations, and acting on them."""
