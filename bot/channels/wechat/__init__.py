"""The WeChat Official Account channel (message push protocol, customer-service API)."""
