"""The custom action endpoint: rasa_sdk's ActionExecutor on a route of this app."""
