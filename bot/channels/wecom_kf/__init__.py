"""WeChat Customer Service (微信客服), through WeCom's kf API."""
