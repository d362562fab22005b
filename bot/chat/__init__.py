"""One customer turn, whatever the channel: log it, understand it, answer it."""
