"""People who sign in: support agents, trainers and admins."""
