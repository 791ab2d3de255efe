"""Staff-mode presenters: who is at the till, and the intents of each staff screen."""
