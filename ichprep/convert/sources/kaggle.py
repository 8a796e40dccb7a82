"""``kaggle://COMPETITION``: a competition's whole download, from Kaggle's API with the user's own credentials.

``GET {api}/competitions/data/download-all/{competition}`` with HTTP basic auth, as the
``kaggle`` command does; Kaggle answers with a redirect to a signed storage URL. The credentials
travel as a header bound to the API's host (``remote.Http`` sends headers to the URL's own
origin only), so the storage host never sees them. ``ICHPREP_KAGGLE_API`` points the API
elsewhere (tests use a local fake of the endpoint).
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

from ichprep.errors import SourceError

SCHEME = "kaggle://"
API_VARIABLE = "ICHPREP_KAGGLE_API"
DEFAULT_API = "https://www.kaggle.com/api/v1"
COMPETITION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")
HINT = "; check your Kaggle credentials, and that you accepted the competition's rules on its Kaggle page"


def locate(src: str) -> tuple[str, dict[str, str]]:
    """The download URL of ``kaggle://COMPETITION`` and the header that authenticates it."""
    competition = src[len(SCHEME):].strip("/")
    if not COMPETITION.fullmatch(competition):
        raise SourceError(f"{src}: give a competition's name, such as {SCHEME}rsna-intracranial-hemorrhage-detection")
    user, key = credentials()
    token = base64.b64encode(f"{user}:{key}".encode()).decode("ascii")
    api = os.environ.get(API_VARIABLE, DEFAULT_API).rstrip("/")
    return f"{api}/competitions/data/download-all/{competition}", {"Authorization": f"Basic {token}"}


def credentials() -> tuple[str, str]:
    """Username and key: ``KAGGLE_USERNAME`` and ``KAGGLE_KEY``, else ``kaggle.json`` in ``KAGGLE_CONFIG_DIR`` or ``~/.kaggle``."""
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if user and key:
        return user, key
    path = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{SCHEME}: no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put the kaggle.json "
                          "of your Kaggle account's settings page in ~/.kaggle") from None
    except (OSError, ValueError) as err:
        raise SourceError(f"{path}: not a readable kaggle.json ({type(err).__name__})") from None
    if not isinstance(found, dict) or not found.get("username") or not found.get("key"):
        raise SourceError(f"{path}: needs a \"username\" and a \"key\"")
    return str(found["username"]), str(found["key"])
