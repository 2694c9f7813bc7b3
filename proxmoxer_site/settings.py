"""Settings of the proxmoxer service, every one from the environment
(docs/operations.md, "Settings"). Read by django-environ, which also parses
DATABASE_URL.

Production (``DJANGO_DEBUG=0``, the default of the WSGI/ASGI entry points)
fails fast on a missing secret key or credentials key; ``manage.py`` defaults to
``DJANGO_DEBUG=1`` so that ``manage.py runserver`` works as it is.
"""

import base64
import hashlib
import hmac
import ssl
import sys
from datetime import timedelta
from pathlib import Path

import environ
import orjson
from django.core.exceptions import ImproperlyConfigured

from clusters.encryption import GENERATE_KEY_COMMAND, parse_keys
from clusters.proxmox.network_policy import DEFAULT_DENIED_NETWORKS, parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-proxmoxer-secret-key-never-use-in-production-0123456789"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG=0; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    sys.stderr.write(
        "WARNING: DJANGO_SECRET_KEY is not set; using a development-only key. "
        "Set it before serving anything but your own machine.\n"
    )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",  # API tokens, stored as SHA-512 digests (docs/security.md, "API tokens")
    "axes",  # login throttling; before clusters, whose login receivers read its verdict
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "clusters",
    "dashboard",
]
# manage.py pve_simulator: a PVE API to try the registry against. A tool for
# development and tests, not part of a production deployment unless asked for.
PROXMOXER_SIMULATOR = env.bool("PROXMOXER_SIMULATOR", default=DEBUG)
if PROXMOXER_SIMULATOR:
    INSTALLED_APPS.append("pve_simulator")

MIDDLEWARE = [
    "clusters.metrics.RequestMetricsMiddleware",
    "clusters.middleware.AccessLogMiddleware",
    "clusters.middleware.ApiErrorEnvelopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out username and address before the
# password is even checked, the right password included.
AUTHENTICATION_BACKENDS = [
    "clusters.auth_backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "proxmoxer_site.urls"
WSGI_APPLICATION = "proxmoxer_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# An unreachable database must not hold a request for the whole outage, nor
# a blocked statement for ever: both end in a 503 with Retry-After
# (clusters/api_errors.py). DATABASE_URL's own ?connect_timeout= or
# ?options=-c statement_timeout=... win.
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=10.0)


def with_timeouts(config: dict) -> dict:
    """``config`` (a DATABASES entry) with the connect and statement
    timeouts, on PostgreSQL; SQLite has no connection to wait for and its
    own lock timeout."""
    if config["ENGINE"] == "django.db.backends.postgresql":
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
        startup = str(options.get("options", ""))
        if "statement_timeout" not in startup:
            milliseconds = max(1, round(DATABASE_STATEMENT_TIMEOUT * 1000))
            options["options"] = f"{startup} -c statement_timeout={milliseconds}".strip()
    return config


DATABASES = {
    "default": with_timeouts(env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))
}
# One connection per worker thread, kept across requests: opening a PostgreSQL
# connection costs more than a whole list request. DATABASE_URL's
# ?conn_max_age= overrides; the health check replaces a connection the server
# closed meanwhile (a database restart) instead of failing a request with it.
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Overridable so that a test can collect into a directory of its own.
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_REDIRECT_URL = "/api/v1/"

# The cache holds the API throttles' counts. Without CACHE_URL it is this
# process's memory, so each worker process counts alone; with
# CACHE_URL=redis://host:6379/N every process shares one count (Django's
# own Redis backend on the redis package; docs/operations.md).
CACHE_URL = env.str("CACHE_URL", default="")
REDIS_CACHE_BACKEND = "django.core.cache.backends.redis.RedisCache"


def cache_from_url(url: str) -> dict:
    """A CACHES entry from a cache URL, Redis ones on Django's own backend."""
    config = environ.Env.cache_url_config(url)
    if url.startswith(("redis://", "rediss://")):
        config["BACKEND"] = REDIS_CACHE_BACKEND
    # django-environ lower-cases the keys it reads from the query string for
    # Django's Redis backend, its top-level ones (key_prefix, timeout) too.
    for key in ("key_prefix", "timeout", "version"):
        if key in config:
            config[key.upper()] = config.pop(key)
    if config["BACKEND"] == REDIS_CACHE_BACKEND:
        # A cache that does not answer costs a request two seconds, not a hang.
        options = config.setdefault("OPTIONS", {})
        options.setdefault("socket_connect_timeout", 2)
        options.setdefault("socket_timeout", 2)
    return config


if CACHE_URL:
    CACHES = {"default": cache_from_url(CACHE_URL)}

# -- the registry ------------------------------------------------------------

CLUSTER_REPOSITORY = env.str("CLUSTER_REPOSITORY", default="memory")
PROXMOX_CONNECT_TIMEOUT = env.float("PROXMOX_CONNECT_TIMEOUT", default=5.0)
PROXMOX_READ_TIMEOUT = env.float("PROXMOX_READ_TIMEOUT", default=10.0)
PROXMOX_CA_BUNDLE = env.str("PROXMOX_CA_BUNDLE", default="")
if PROXMOX_CA_BUNDLE:
    _ca_bundle = Path(PROXMOX_CA_BUNDLE)
    if not _ca_bundle.exists():
        raise ImproperlyConfigured(f"PROXMOX_CA_BUNDLE={PROXMOX_CA_BUNDLE} does not exist")
    try:  # fail at start-up rather than at the first registration
        if _ca_bundle.is_dir():
            ssl.create_default_context(capath=_ca_bundle)
        else:
            ssl.create_default_context(cafile=_ca_bundle)
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        raise ImproperlyConfigured(
            f"PROXMOX_CA_BUNDLE={PROXMOX_CA_BUNDLE} holds no readable PEM certificate"
        ) from None

# -- background checks (docs/operations.md, "Background checks") ----------------

PROXMOXER_CHECK_INTERVAL = env.float("PROXMOXER_CHECK_INTERVAL", default=60.0)
PROXMOXER_CHECK_CONCURRENCY = env.int("PROXMOXER_CHECK_CONCURRENCY", default=16)
PROXMOXER_HISTORY_LIMIT = env.int("PROXMOXER_HISTORY_LIMIT", default=1000)
# `manage.py runserver` (make run) keeps health current with no other service;
# anywhere else checking is a decision: `celery` workers, or `embedded` by hand.
_RUNSERVER = len(sys.argv) > 1 and sys.argv[1] == "runserver"
PROXMOXER_MONITOR = env.str("PROXMOXER_MONITOR", default="embedded" if _RUNSERVER else "off")
MONITOR_ENGINES = ("embedded", "celery", "off")
if PROXMOXER_MONITOR not in MONITOR_ENGINES:
    raise ImproperlyConfigured(
        f"PROXMOXER_MONITOR={PROXMOXER_MONITOR!r} is not an engine; choose one of "
        f"{', '.join(MONITOR_ENGINES)}"
    )
for _name, _minimum in (
    ("PROXMOXER_CHECK_INTERVAL", 1),
    ("PROXMOXER_CHECK_CONCURRENCY", 1),
    ("PROXMOXER_HISTORY_LIMIT", 1),
):
    if globals()[_name] < _minimum:
        raise ImproperlyConfigured(f"{_name} must be at least {_minimum}")

# Celery (PROXMOXER_MONITOR=celery; proxmoxer_site/celery.py): Redis as the
# broker, nothing kept of task results, the schedule itself in memory (each
# beat's own: duplicates are harmless, the database decides who checks).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = env.str("PROXMOXER_CELERY_QUEUE", default="proxmoxer")
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits for Redis as long as it takes
CELERY_BEAT_SCHEDULER = "celery.beat:Scheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the log format below, not Celery's
CELERY_WORKER_REDIRECT_STDOUTS = False
# Where the Proxmox client may connect (docs/security.md, "Outbound
# requests"): checked on every address a connection goes to. Denied wins;
# no allowed list allows everything not denied.
PROXMOXER_DENIED_NETWORKS = env.list(
    "PROXMOXER_DENIED_NETWORKS", default=list(DEFAULT_DENIED_NETWORKS)
)
PROXMOXER_ALLOWED_NETWORKS = env.list("PROXMOXER_ALLOWED_NETWORKS", default=[])
for _name in ("PROXMOXER_DENIED_NETWORKS", "PROXMOXER_ALLOWED_NETWORKS"):
    try:
        parse_networks(globals()[_name])
    except ValueError as error:
        raise ImproperlyConfigured(f"{_name}: {error}") from None

# Fernet keys for the secrets the database backend stores, newest first
# (docs/operations.md, "Keys and rotation").
PROXMOXER_CREDENTIALS_KEYS = [
    key.strip() for key in env.list("PROXMOXER_CREDENTIALS_KEYS", default=[]) if key.strip()
]
if not PROXMOXER_CREDENTIALS_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "PROXMOXER_CREDENTIALS_KEYS is required when DJANGO_DEBUG=0: a comma list of Fernet "
            f"keys, newest first, that encrypt stored cluster secrets; generate one with "
            f"{GENERATE_KEY_COMMAND}"
        )
    # Development only: derived from the secret key, so a dev database's
    # secrets stay readable across restarts (and become unreadable when
    # DJANGO_SECRET_KEY changes).
    _derived = hmac.new(SECRET_KEY.encode(), b"proxmoxer credentials key", hashlib.sha256)
    PROXMOXER_CREDENTIALS_KEYS = [base64.urlsafe_b64encode(_derived.digest()).decode()]
else:
    # A malformed key fails at startup, not at the first request that needs it.
    parse_keys(PROXMOXER_CREDENTIALS_KEYS)

# GET /metrics answers only with "Authorization: Bearer <this>"; unset, it
# is a 404 (docs/operations.md, "Metrics").
PROXMOXER_METRICS_TOKEN = env.str("PROXMOXER_METRICS_TOKEN", default="")

# The largest legitimate request is a few KiB; anything past this is refused
# with 413 before a parser or Proxmox sees it.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# make serve's front end (proxmoxer_site/serving.py): threads per process
# that run the application, and how long a request body may take to arrive
# before it is answered 408 (a stalled client costs no thread meanwhile).
SERVE_THREADS = env.int("PROXMOXER_SERVE_THREADS", default=4)
REQUEST_BODY_TIMEOUT = env.float("PROXMOXER_REQUEST_BODY_TIMEOUT", default=10.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: unauthenticated calls then get 401 + WWW-Authenticate.
        # django-rest-knox: the same `Authorization: Token <key>` header as
        # DRF's authtoken, but only a digest of the key is stored.
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Roles (docs/product-contract.md §13) for every view that does not say
    # otherwise: the API root, the schema and the docs included.
    "DEFAULT_PERMISSION_CLASSES": ["clusters.access.RolePermission"],
    # orjson: the same JSON as DRF's renderer, several times faster on a
    # long cluster list (docs/benchmarks.md); datetimes in UTC end in "Z",
    # as DRF's DateTimeField writes them.
    "DEFAULT_RENDERER_CLASSES": [
        "drf_orjson_renderer.renderers.ORJSONRenderer",
        "clusters.browsable.BrowsableAPIRenderer",
    ],
    "ORJSON_RENDERER_OPTIONS": (orjson.OPT_UTC_Z,),
    "DEFAULT_PARSER_CLASSES": [
        "clusters.request_shapes.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_THROTTLE_RATE", default="600/minute")},
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "clusters.request_shapes.ContentNegotiation",
    "EXCEPTION_HANDLER": "clusters.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "proxmoxer",
    "DESCRIPTION": "A registry of Proxmox VE clusters: register, list, inspect, re-check, remove.",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["clusters.access.RolePermission"],
    "SWAGGER_UI_DIST": "SIDECAR",  # served from this app: no CDN, works offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# -- who may do what, and the record of it (docs/security.md) -----------------

# Days an audit event is kept; manage.py audit_retention (and the background
# scheduler) remove older ones. 0 keeps every event.
PROXMOXER_AUDIT_RETENTION_DAYS = env.int("PROXMOXER_AUDIT_RETENTION_DAYS", default=365)
if PROXMOXER_AUDIT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        "PROXMOXER_AUDIT_RETENTION_DAYS must be a number of days, 0 to keep every event"
    )

REST_KNOX = {
    # Tokens last until revoked (manage.py api_token revoke), as DRF's did;
    # `api_token create --days N` gives one an end.
    "TOKEN_TTL": None,
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}

# Logins at /api-auth/login/ and /admin/login/: after 5 failures for one
# username from one address, that pair is refused for 15 minutes (counted in
# the database, so every worker process shares the count).
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The audit log records every login and failed login; axes's own access log
# would be a second, unbounded copy.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# -- production hardening (manage.py check --deploy) -------------------------
# TLS ends at the reverse proxy in front of gunicorn, which sets
# X-Forwarded-Proto; plain-HTTP probes of /health are let through.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health(/ready)?/?$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

# -- logging -----------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "lines": {
            "()": "proxmoxer_site.log_format.LogLineFormatter",
            "format": "%(asctime)s [%(levelname)s] %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%SZ",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "lines"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "clusters": {"level": LOG_LEVEL},
        "proxmoxer": {"level": LOG_LEVEL},
        # Our access line replaces runserver's; django.request would repeat
        # every 4xx as a warning.
        "django.server": {"level": "ERROR"},
        "django.request": {"level": "ERROR"},
    },
}
