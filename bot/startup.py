"""What `kefu serve` says when it starts: where to go, and what is on or off and why.

The model's name and load time follow once it has loaded (in the background,
so that /healthz answers meanwhile); the first-start admin password is printed
once by the accounts' start-up (bot/app.py).
"""

from __future__ import annotations

import logging

from bot.settings import Settings

logger = logging.getLogger("bot")
ACCESS_LOGGER = "aiohttp.access"


def access_log(settings: Settings) -> logging.Logger | None:
    """aiohttp's access logger, or None (no access log).

    BOT_ACCESS_LOG decides; unset, access lines are written in JSON mode (operators
    collect them) and not in text mode (a terminal would fill with them).
    """
    on = settings.access_log if settings.access_log is not None else settings.log_format == "json"
    return logging.getLogger(ACCESS_LOGGER) if on else None


def channels(settings: Settings) -> list[str]:
    """Each channel, on or off, and why."""
    rest = (
        "REST webhook on (bearer token required)"
        if settings.rest_token
        else "REST webhook on, open to anyone (set BOT_REST_TOKEN)"
    )
    if settings.wechat_enabled:
        mode = "safe mode" if settings.wechat_aes_key else "plain mode"
        wechat = f"WeChat on ({mode}, /webhooks/wechat)"
    else:
        wechat = _off(
            "WeChat",
            ("WECHAT_TOKEN", settings.wechat_token),
            ("WECHAT_APPID", settings.wechat_appid),
            ("WECHAT_SECRET", settings.wechat_secret),
        )
    if settings.wecom_kf_enabled:
        to = "WeCom's servicers" if settings.wecom_kf_handoff == "servicer" else "the console"
        wecom_kf = f"WeChat Customer Service on (/webhooks/wecom-kf, handoff to {to})"
    else:
        wecom_kf = _off(
            "WeChat Customer Service",
            ("WECOM_CORP_ID", settings.wecom_corp_id),
            ("WECOM_KF_SECRET", settings.wecom_kf_secret),
            ("WECOM_TOKEN", settings.wecom_token),
            ("WECOM_AES_KEY", settings.wecom_aes_key),
        )
    if settings.weibo_enabled:
        weibo = "Weibo on (/webhooks/weibo)"
    else:
        weibo = _off(
            "Weibo",
            ("WEIBO_APP_SECRET", settings.weibo_app_secret),
            ("WEIBO_ACCESS_TOKEN", settings.weibo_access_token),
        )
    return ["web chat on", rest, wechat, wecom_kf, weibo]


def _off(name: str, *required: tuple[str, str | None]) -> str:
    """`name` is off: which of its settings are missing."""
    missing = [setting for setting, value in required if not value]
    return f"{name} off ({', '.join(missing)} not set)"


def urls(settings: Settings) -> list[tuple[str, str]]:
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    base = f"http://{host}:{settings.port}"
    return [
        ("web chat", f"{base}/"),
        ("agents' console", f"{base}/console"),
        ("review", f"{base}/review"),
        ("KPIs", f"{base}/stats"),
        ("health", f"{base}/healthz, {base}/readyz"),
    ]


def announce(settings: Settings) -> None:
    """Log where the bot serves and which channels are on (aiohttp calls this once bound)."""
    width = max(len(name) for name, _ in urls(settings))
    lines = [f"  {name:<{width}}  {url}" for name, url in urls(settings)]
    logger.info("serving on %s:%s\n%s", settings.host, settings.port, "\n".join(lines))
    logger.info("channels: %s", "; ".join(channels(settings)))
    logger.info(
        "access log %s, log format %s",
        "on" if access_log(settings) else "off (BOT_ACCESS_LOG=true to write one)",
        settings.log_format,
    )
