"""Retrain, gate, promote, reload: how a trainer's relabels reach the running bot."""
