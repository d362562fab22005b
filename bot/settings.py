"""Settings, loaded once at start-up from the environment (and an optional `.env`).

Modules never read `os.environ` themselves: they receive a `Settings`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from bot.channels.wechat.crypto import aes_key

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MODEL_DIR = "models"
DEFAULT_KEY_PREFIX = "kefu"
# A customer message longer than this is refused: real chat messages are far
# shorter, and the NLU's cost grows with the length.
DEFAULT_MAX_MESSAGE_CHARS = 2000
# Request bodies above this are refused with 413 before they are read whole.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Redis sits on the same host or network: a reply slower than this means it is
# stalled, and the request should fail (503) rather than hang the process.
DEFAULT_REDIS_TIMEOUT = 2.0
# A holder of a conversation lock refreshes it every third of this; a process
# that dies holding one blocks that conversation at most this long.
DEFAULT_LOCK_LIFETIME = 10.0
# A knowledge entry not reviewed for longer than this is not used.
DEFAULT_KNOWLEDGE_MAX_AGE_DAYS = 365
# The order system must answer within this, or the bot says it cannot check now.
DEFAULT_ORDER_API_TIMEOUT = 3.0
ORDER_BACKENDS = ("demo", "http")
# Redis Sentinel's conventional service name; REDIS_SENTINEL_MASTER names another.
DEFAULT_SENTINEL_MASTER = "kefu"
LOG_FORMATS = ("text", "json")
# Who takes a WeChat Customer Service conversation handed to a person.
WECOM_KF_HANDOFFS = ("console", "servicer")
# Weibo's fan-service API (messages/reply.json lives under /2/).
DEFAULT_WEIBO_API_BASE = "https://m.api.weibo.com"


N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A configuration value is present but unusable."""


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file: `NAME=value` lines, `#` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def _positive(env: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


def _sentinels(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """`REDIS_SENTINELS`: comma-separated `host:port` (an IPv6 host in brackets)."""
    found: list[tuple[str, int]] = []
    for item in env.get("REDIS_SENTINELS", "").split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"REDIS_SENTINELS must be host:port,host:port…, got {item!r}")
        found.append((host, int(port)))
    return tuple(found)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise SettingsError(f"{name} must be a whole number, 0 or more, got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


# Group robots' message formats (bot/handoff/alerts.py), the first the default.
ALERT_FORMATS = ("wecom", "dingtalk", "feishu")
# Those whose robots can require signed messages (BOT_ALERT_WEBHOOK_SECRET).
SIGNED_ALERT_FORMATS = ("dingtalk", "feishu")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _webhook(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and not raw.startswith(("https://", "http://")):
        raise SettingsError(f"{name} must be an http(s) URL")
    return raw or None


@dataclass(frozen=True)
class ServiceLevels:
    """First-response targets: seconds from joining the queue to an agent's first reply."""

    default: float = 120.0
    by_channel: tuple[tuple[str, float], ...] = ()

    def target(self, channel: str) -> float:
        return dict(self.by_channel).get(channel, self.default)


def _service_levels(env: Mapping[str, str], name: str) -> ServiceLevels:
    """`120` or `120,wechat=300,webchat=60`: a default, then per channel."""
    raw = env.get(name, "").strip()
    if not raw:
        return ServiceLevels()
    default, channels = ServiceLevels().default, []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        channel, _, seconds = part.rpartition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = 0.0
        if value <= 0 or (channel and not channel.replace("_", "").isalnum()):
            raise SettingsError(f"{name}: `seconds` or `channel=seconds`, got {part!r}")
        if channel:
            channels.append((channel, value))
        else:
            default = value
    return ServiceLevels(default, tuple(channels))


@dataclass(frozen=True)
class Rate:
    """At most `count` events per `seconds` (a burst of `count`, then evenly spaced); 0 = off."""

    count: int
    seconds: float

    @property
    def on(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}" if self.on else "off"


def _rate(env: Mapping[str, str], name: str, default: Rate) -> Rate:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "off"):
        return Rate(0, 1.0)
    count, _, seconds = raw.partition("/")
    try:
        rate = Rate(int(count), float(seconds))
    except ValueError:
        rate = Rate(0, 0.0)
    if rate.count <= 0 or rate.seconds <= 0:
        raise SettingsError(f"{name} must be COUNT/SECONDS (e.g. 20/60) or off, got {raw!r}")
    return rate


def _proxies(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Addresses or networks (CIDR) of the reverse proxies in front of the bot."""
    items = tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise SettingsError(f"{name}: {item!r} is not an address or network") from exc
    return items


def _origin(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip().rstrip("/")
    if not raw:
        return None
    scheme, sep, host = raw.partition("://")
    if scheme not in ("http", "https") or not sep or not host or "/" in host:
        raise SettingsError(f"{name} must be like https://kefu.example.com, got {raw!r}")
    return raw.lower()


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told from outside. See README for each name."""

    redis_url: str = DEFAULT_REDIS_URL
    # Redis Sentinel (high availability): when set, the master of
    # `redis_sentinel_master` is found through these and REDIS_URL is not used.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = DEFAULT_SENTINEL_MASTER
    redis_password: str | None = None
    redis_sentinel_password: str | None = None
    # Before answering a message, wait until this many replicas hold every write
    # (Redis WAIT), at most `redis_wait_timeout` seconds: a failover then cannot
    # lose an acknowledged message. 0 = do not wait (a single Redis).
    redis_wait_replicas: int = 0
    redis_wait_timeout: float = 0.5
    # prometheus-client multiprocess mode (BOT_WORKERS > 1): the folder the
    # workers' metric files are written to, summed at each scrape.
    metrics_dir: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    admin_token: str | None = None
    model_dir: Path = Path(DEFAULT_MODEL_DIR)
    key_prefix: str = DEFAULT_KEY_PREFIX
    action_token: str | None = None
    action_url: str | None = None
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    lock_lifetime: float = DEFAULT_LOCK_LIFETIME
    log_level: str = "INFO"
    # Logs: `text` or `json` (one object per line); access log lines (None: on in JSON
    # mode, off in text mode); customer text in log events (debugging only).
    log_format: str = "text"
    access_log: bool | None = None
    log_customer_text: bool = False
    knowledge_file: Path = Path("nlu_data/knowledge.yml")
    messages_file: Path = Path("nlu_data/messages.yml")
    # How the bot names each intent when it asks which one the customer meant.
    clarification_file: Path = Path("nlu_data/clarification.yml")
    knowledge_max_age_days: int = DEFAULT_KNOWLEDGE_MAX_AGE_DAYS
    workers: int = 1
    bcrypt_rounds: int = 12
    order_backend: str = "demo"
    order_api_url: str | None = None
    order_api_token: str | None = None
    order_api_timeout: float = DEFAULT_ORDER_API_TIMEOUT
    # Handoff: re-announce a waiting conversation nobody took after this long;
    # return an assigned one whose agent did nothing for this long to the queue.
    handoff_reannounce_seconds: float = 300.0
    handoff_idle_seconds: float = 600.0
    handoff_sweep_seconds: float = 5.0
    # Teams: which team takes which escalation (trainers' file); automatic
    # assignment to an online agent of the team with room (off: agents claim);
    # how many conversations an agent holds at once unless an admin set theirs;
    # how often an open console renews its agent's presence, and how long an
    # agent stays online after their last console closed (a reload is not leaving).
    teams_file: Path = Path("nlu_data/teams.yml")
    auto_assign: bool = False
    agent_capacity: int = 3
    presence_renew_seconds: float = 10.0
    presence_grace_seconds: float = 30.0
    # First-response targets per channel (the console's timers, the KPIs' share).
    service_levels: ServiceLevels = ServiceLevels()
    # Group-robot alerts (off unless a webhook is set): a customer waiting this
    # long, or this many waiting, told to the team's WeCom/DingTalk/Feishu group.
    alert_webhook: str | None = None
    alert_webhook_format: str = "wecom"
    # DingTalk's and Feishu's robots can require every message signed with it (加签).
    alert_webhook_secret: str | None = None
    alert_wait_seconds: float = 300.0
    alert_queue_size: int = 10
    # WeChat Official Account channel: off unless token, appid and secret are all set.
    wechat_token: str | None = None
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_aes_key: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_reply_budget: float = 4.0
    wechat_timestamp_window: float = 300.0
    # What the custom menu buttons of WeChat and Weibo mean (trainers' file).
    menu_file: Path = Path("nlu_data/menu.yml")
    # Weibo fan-service direct messages (developer mode): off unless the app
    # secret (it signs pushes) and the account's access token are both set.
    weibo_app_secret: str | None = None
    weibo_access_token: str | None = None
    weibo_api_base: str = DEFAULT_WEIBO_API_BASE
    weibo_reply_budget: float = 4.0
    weibo_timestamp_window: float = 300.0
    # Trainers' loop: the project folder holding config.yml and nlu_data/ (relabels
    # are written there, retraining reads it); log retention; masking in the log.
    data_root: Path = Path(".")
    retention_days: int = 180
    mask_pii: bool = False
    metrics_token: str | None = None
    # The REST webhook is for platforms: with a token set, callers must send it.
    rest_token: str | None = None
    # Signs web chat session cookies; unset, a random one is shared through Redis.
    webchat_secret: str | None = None
    # Abuse resistance (README, "Security"): proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed, the origin websockets must come from,
    # message rates per conversation and per client address, bounds on
    # `metadata`, how long a request body may take to arrive, sign-in ceilings.
    trusted_proxies: tuple[str, ...] = ()
    public_origin: str | None = None
    rate_conversation: Rate = Rate(20, 60.0)
    rate_address: Rate = Rate(120, 60.0)
    login_address_rate: Rate = Rate(30, 600.0)
    max_metadata_bytes: int = 4096
    max_metadata_depth: int = 5
    body_timeout: float = 10.0
    max_tracker_events: int = 400
    # Parses kept by text (0: every message goes through the NLU).
    parse_cache: int = 4096
    # Without a metrics token: /metrics open (a developer's `make run`) or closed.
    metrics_open: bool = True
    # WeChat Customer Service (微信客服, WeCom's kf API): off unless the corp id, the
    # kf secret, the callback's Token and EncodingAESKey are all set. Handoff goes
    # to our console, or with `wecom_kf_handoff` "servicer" to WeCom's own servicers
    # (`wecom_kf_servicer`: one servicer's userid; unset, WeCom's waiting pool).
    wecom_corp_id: str | None = None
    wecom_kf_secret: str | None = None
    wecom_token: str | None = None
    wecom_aes_key: str | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_kf_handoff: str = "console"
    wecom_kf_servicer: str | None = None
    # After a refused pull (rate limited, WeCom unreachable) the next try waits this long.
    wecom_kf_retry_seconds: float = 5.0

    @property
    def wecom_kf_enabled(self) -> bool:
        return bool(
            self.wecom_corp_id and self.wecom_kf_secret and self.wecom_token and self.wecom_aes_key
        )

    @property
    def wechat_enabled(self) -> bool:
        return bool(self.wechat_token and self.wechat_appid and self.wechat_secret)

    @property
    def weibo_enabled(self) -> bool:
        return bool(self.weibo_app_secret and self.weibo_access_token)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` (default: the process environment).

        Values in the environment win over those in the `.env` file.
        """
        env: dict[str, str] = read_dotenv(dotenv) if dotenv is not None else {}
        env.update(os.environ if environ is None else environ)
        prefix = env.get("BOT_KEY_PREFIX", DEFAULT_KEY_PREFIX).strip() or DEFAULT_KEY_PREFIX
        if not prefix.isalnum():
            # Rasa's Redis tracker store silently ignores a non-alphanumeric prefix.
            raise SettingsError(f"BOT_KEY_PREFIX must be letters and digits, got {prefix!r}")
        order_backend = env.get("ORDER_BACKEND", "").strip() or "demo"
        if order_backend not in ORDER_BACKENDS:
            raise SettingsError(
                f"ORDER_BACKEND must be one of {ORDER_BACKENDS}, got {order_backend!r}"
            )
        wechat_aes_key = env.get("WECHAT_AES_KEY", "").strip() or None
        wecom_aes_key = env.get("WECOM_AES_KEY", "").strip() or None
        for name, value in (("WECHAT_AES_KEY", wechat_aes_key), ("WECOM_AES_KEY", wecom_aes_key)):
            if value is not None:
                try:
                    aes_key(value, name)
                except ValueError as exc:
                    raise SettingsError(str(exc)) from exc
        wecom_kf_handoff = (env.get("WECOM_KF_HANDOFF", "").strip() or "console").lower()
        if wecom_kf_handoff not in WECOM_KF_HANDOFFS:
            raise SettingsError(
                f"WECOM_KF_HANDOFF must be one of {WECOM_KF_HANDOFFS}, got {wecom_kf_handoff!r}"
            )
        order_api_url = env.get("ORDER_API_URL", "").strip() or None
        sentinels = _sentinels(env)
        raw_metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
        if order_backend == "http" and not order_api_url:
            raise SettingsError("ORDER_BACKEND=http needs ORDER_API_URL")
        log_format = (env.get("BOT_LOG_FORMAT", "").strip() or "text").lower()
        if log_format not in LOG_FORMATS:
            raise SettingsError(f"BOT_LOG_FORMAT must be one of {LOG_FORMATS}, got {log_format!r}")
        alert_format = _choice(env, "BOT_ALERT_WEBHOOK_FORMAT", ALERT_FORMATS)
        alert_secret = env.get("BOT_ALERT_WEBHOOK_SECRET", "").strip() or None
        if alert_secret and alert_format not in SIGNED_ALERT_FORMATS:
            # WeCom's robots have no signing: a secret set for one is a mistake.
            raise SettingsError(
                "BOT_ALERT_WEBHOOK_SECRET signs DingTalk and Feishu robots only, "
                f"not {alert_format}"
            )
        return cls(
            log_format=log_format,
            access_log=_flag(env, "BOT_ACCESS_LOG") if env.get("BOT_ACCESS_LOG") else None,
            log_customer_text=_flag(env, "BOT_LOG_CUSTOMER_TEXT"),
            workers=_positive(env, "BOT_WORKERS", 1, int),
            bcrypt_rounds=min(max(_positive(env, "BOT_BCRYPT_ROUNDS", 12, int), 4), 16),
            order_backend=order_backend,
            order_api_url=order_api_url,
            order_api_token=env.get("ORDER_API_TOKEN", "").strip() or None,
            order_api_timeout=_positive(env, "ORDER_API_TIMEOUT", DEFAULT_ORDER_API_TIMEOUT, float),
            redis_url=env.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL,
            redis_sentinels=sentinels,
            redis_sentinel_master=env.get("REDIS_SENTINEL_MASTER", "").strip()
            or DEFAULT_SENTINEL_MASTER,
            redis_password=env.get("REDIS_PASSWORD", "") or None,
            redis_sentinel_password=env.get("REDIS_SENTINEL_PASSWORD", "") or None,
            redis_wait_replicas=_count(env, "BOT_REDIS_WAIT_REPLICAS", 1 if sentinels else 0),
            redis_wait_timeout=_positive(env, "BOT_REDIS_WAIT_TIMEOUT", 0.5, float),
            metrics_dir=Path(raw_metrics_dir) if raw_metrics_dir else None,
            host=env.get("BOT_HOST", "").strip() or DEFAULT_HOST,
            port=_positive(env, "BOT_PORT", DEFAULT_PORT, int),
            admin_token=env.get("BOT_ADMIN_TOKEN", "").strip() or None,
            model_dir=Path(env.get("BOT_MODEL_DIR", "").strip() or DEFAULT_MODEL_DIR),
            key_prefix=prefix,
            action_token=env.get("BOT_ACTION_TOKEN", "").strip() or None,
            action_url=env.get("BOT_ACTION_URL", "").strip() or None,
            max_message_chars=_positive(
                env, "BOT_MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS, int
            ),
            max_body_bytes=_positive(env, "BOT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int),
            redis_timeout=_positive(env, "BOT_REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT, float),
            lock_lifetime=_positive(env, "BOT_LOCK_LIFETIME", DEFAULT_LOCK_LIFETIME, float),
            log_level=(env.get("BOT_LOG_LEVEL", "").strip() or "INFO").upper(),
            knowledge_file=Path(
                env.get("BOT_KNOWLEDGE_FILE", "").strip() or "nlu_data/knowledge.yml"
            ),
            messages_file=Path(env.get("BOT_MESSAGES_FILE", "").strip() or "nlu_data/messages.yml"),
            knowledge_max_age_days=_positive(
                env, "BOT_KNOWLEDGE_MAX_AGE_DAYS", DEFAULT_KNOWLEDGE_MAX_AGE_DAYS, int
            ),
            handoff_reannounce_seconds=_positive(env, "BOT_HANDOFF_REANNOUNCE", 300.0, float),
            handoff_idle_seconds=_positive(env, "BOT_HANDOFF_IDLE", 600.0, float),
            handoff_sweep_seconds=_positive(env, "BOT_HANDOFF_SWEEP", 5.0, float),
            teams_file=Path(env.get("BOT_TEAMS_FILE", "").strip() or "nlu_data/teams.yml"),
            auto_assign=_flag(env, "BOT_AUTO_ASSIGN"),
            agent_capacity=_positive(env, "BOT_AGENT_CAPACITY", 3, int),
            presence_renew_seconds=_positive(env, "BOT_PRESENCE_RENEW", 10.0, float),
            presence_grace_seconds=_positive(env, "BOT_PRESENCE_GRACE", 30.0, float),
            service_levels=_service_levels(env, "BOT_SLA_FIRST_RESPONSE"),
            alert_webhook=_webhook(env, "BOT_ALERT_WEBHOOK"),
            alert_webhook_format=alert_format,
            alert_webhook_secret=alert_secret,
            alert_wait_seconds=_positive(env, "BOT_ALERT_WAIT", 300.0, float),
            alert_queue_size=_positive(env, "BOT_ALERT_QUEUE", 10, int),
            wechat_token=env.get("WECHAT_TOKEN", "").strip() or None,
            wechat_appid=env.get("WECHAT_APPID", "").strip() or None,
            wechat_secret=env.get("WECHAT_SECRET", "").strip() or None,
            wechat_aes_key=wechat_aes_key,
            wechat_api_base=(
                env.get("WECHAT_API_BASE", "").strip() or "https://api.weixin.qq.com"
            ).rstrip("/"),
            wechat_reply_budget=_positive(env, "WECHAT_REPLY_BUDGET", 4.0, float),
            wechat_timestamp_window=_positive(env, "WECHAT_TIMESTAMP_WINDOW", 300.0, float),
            menu_file=Path(env.get("BOT_MENU_FILE", "").strip() or "nlu_data/menu.yml"),
            weibo_app_secret=env.get("WEIBO_APP_SECRET", "").strip() or None,
            weibo_access_token=env.get("WEIBO_ACCESS_TOKEN", "").strip() or None,
            weibo_api_base=env.get("WEIBO_API_BASE", "").strip() or DEFAULT_WEIBO_API_BASE,
            weibo_reply_budget=_positive(env, "WEIBO_REPLY_BUDGET", 4.0, float),
            weibo_timestamp_window=_positive(env, "WEIBO_TIMESTAMP_WINDOW", 300.0, float),
            data_root=Path(env.get("BOT_DATA_ROOT", "").strip() or "."),
            retention_days=_positive(env, "BOT_RETENTION_DAYS", 180, int),
            mask_pii=_flag(env, "BOT_MASK_PII"),
            metrics_token=env.get("BOT_METRICS_TOKEN", "").strip() or None,
            rest_token=env.get("BOT_REST_TOKEN", "").strip() or None,
            webchat_secret=env.get("BOT_WEBCHAT_SECRET", "").strip() or None,
            trusted_proxies=_proxies(env, "BOT_TRUSTED_PROXIES"),
            public_origin=_origin(env, "BOT_PUBLIC_ORIGIN"),
            rate_conversation=_rate(env, "BOT_RATE_CONVERSATION", Rate(20, 60.0)),
            rate_address=_rate(env, "BOT_RATE_ADDRESS", Rate(120, 60.0)),
            login_address_rate=_rate(env, "BOT_LOGIN_ADDRESS_RATE", Rate(30, 600.0)),
            max_metadata_bytes=_positive(env, "BOT_MAX_METADATA_BYTES", 4096, int),
            max_metadata_depth=_positive(env, "BOT_MAX_METADATA_DEPTH", 5, int),
            body_timeout=_positive(env, "BOT_BODY_TIMEOUT", 10.0, float),
            max_tracker_events=_positive(env, "BOT_MAX_TRACKER_EVENTS", 400, int),
            parse_cache=_count(env, "BOT_PARSE_CACHE", 4096),
            metrics_open=_flag(env, "BOT_METRICS_OPEN", default=True),
            wecom_corp_id=env.get("WECOM_CORP_ID", "").strip() or None,
            wecom_kf_secret=env.get("WECOM_KF_SECRET", "").strip() or None,
            wecom_token=env.get("WECOM_TOKEN", "").strip() or None,
            wecom_aes_key=wecom_aes_key,
            wecom_api_base=(
                env.get("WECOM_API_BASE", "").strip() or "https://qyapi.weixin.qq.com"
            ).rstrip("/"),
            wecom_kf_handoff=wecom_kf_handoff,
            wecom_kf_servicer=env.get("WECOM_KF_SERVICER", "").strip() or None,
            wecom_kf_retry_seconds=_positive(env, "WECOM_KF_RETRY_SECONDS", 5.0, float),
        )

    def with_(self, **changes: object) -> Settings:
        """A copy with some values changed (tests and benchmarks use this)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def action_endpoint_url(self) -> str:
        """Where Rasa calls custom actions: this same process unless BOT_ACTION_URL says."""
        if self.action_url:
            return self.action_url
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/webhooks/actions"
