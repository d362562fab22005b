"""What trainers write for the bot to say: messages and the knowledge file."""
