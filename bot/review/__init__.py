"""Trainers' review: finding misunderstood messages, relabelling them into nlu_data/."""
