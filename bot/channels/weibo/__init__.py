"""Weibo fan-service direct messages (粉丝服务平台, developer mode): push in, reply API out."""
