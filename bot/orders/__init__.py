"""Order facts, from the order system only."""
