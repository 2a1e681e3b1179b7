"""Where files go: the upload target resolved as twine resolves it (a URL, else a
``.pypirc`` section), the simple index read before each upload, and twine itself."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ConfigurationError
from ..files import sanitize_url, without_userinfo

LOGIN_HINT = "set TWINE_USERNAME and TWINE_PASSWORD, or name a .pypirc section with -r"


@dataclass(frozen=True)
class UploadTarget:
    """twine's arguments (never a secret: ``twine_env`` carries those), and the
    simple index checked before each upload."""

    twine_args: tuple[str, ...]
    simple_url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    upload_url: str = ""
    twine_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    username: str | None = None  # a user name without its password is still a login tried

    @property
    def shown(self) -> str:
        return sanitize_url(self.simple_url)

    def auth_for(self, url: str) -> tuple[str, str] | None:
        """The upload credentials, for a URL on the origin they were given for only."""
        return self.auth if _origin(url) == _origin(self.upload_url or self.simple_url) else None

    def login_hint(self) -> str:
        """The next step when the index refused: no login given, half of one, or a wrong one."""
        if self.auth:
            return (
                "the index refused the login given (check TWINE_USERNAME/TWINE_PASSWORD "
                "or the .pypirc section named with -r)"
            )
        if self.username:
            return (
                f"the index needs a login: user {self.username!r} has no password; set "
                "TWINE_PASSWORD or the password of the .pypirc section named with -r"
            )
        return f"the index needs a login: {LOGIN_HINT}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def simple_url_for(upload_url: str) -> str:
    """The simple index of an upload URL: ``/legacy/`` dropped, an ``upload.`` host
    label dropped, ``simple/`` appended (pypiserver: ``http://h:p/`` -> ``/simple/``)."""
    parts = urlsplit(upload_url)
    host = parts.hostname or ""
    netloc = host[len("upload.") :] if host.startswith("upload.") else host
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path.rstrip("/")
    if path.endswith("/legacy"):
        path = path[: -len("/legacy")]
    return urlunsplit((parts.scheme, netloc, path + "/simple/", "", ""))


def resolve_target(
    *,
    repository: str | None = None,
    repository_url: str | None = None,
    index_url: str | None = None,
    config_file: str | None = None,
) -> UploadTarget:
    """Resolve the upload target as twine will (URL, else the .pypirc section)."""
    from twine import exceptions as twine_exc
    from twine import utils as twine_utils

    env = os.environ
    repository_url = repository_url or env.get("TWINE_REPOSITORY_URL")
    username, password = env.get("TWINE_USERNAME"), env.get("TWINE_PASSWORD")
    config = config_file or twine_utils.DEFAULT_CONFIG_FILE
    secrets: dict[str, str] = {}
    if repository_url:
        url = without_userinfo(repository_url)
        # Credentials in the URL go to twine through its environment, never argv (ps).
        args: tuple[str, ...] = ("--repository-url", url)
        parts = urlsplit(repository_url)
        if parts.username:
            username, password = unquote(parts.username), unquote(parts.password or "")
            secrets = {"TWINE_USERNAME": username, "TWINE_PASSWORD": password}
    else:
        name = repository or env.get("TWINE_REPOSITORY") or "pypi"
        try:
            section = twine_utils.get_repository_from_config(config, name)
        except twine_exc.TwineException as exc:
            message = str(exc).splitlines()[0]
            raise ConfigurationError(f"repository {name!r}: {message}") from None
        except KeyError:  # twine's own lookup of the section's URL
            raise ConfigurationError(
                f"repository {name!r}: its section in {config} has no 'repository' URL"
            ) from None
        url = section["repository"] or ""
        username = username or section.get("username")
        password = password or section.get("password")
        args = ("--repository", name)
    if config_file:
        args += ("--config-file", config_file)
    userless = without_userinfo(url)
    auth = (username, password) if username and password else None
    simple = index_url or simple_url_for(userless)
    return UploadTarget(args, simple, auth, upload_url=userless, twine_env=tuple(secrets.items()),
                  username=username or None)  # fmt: skip


def find_twine() -> str:
    """twine from NW_TWINE, else PATH, else beside this interpreter (its venv's bin/)."""
    wanted = os.environ.get("NW_TWINE")
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            raise ConfigurationError(f"twine not found: NW_TWINE={wanted!r} does not run")
        return found
    here = Path(sys.executable).parent
    found = shutil.which("twine") or shutil.which("twine", path=str(here))
    if found is None:
        raise ConfigurationError(
            f"twine not found on PATH or in {here}; install it: pip install twine"
        )
    return found
