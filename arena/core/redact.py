"""Secrets out of error texts: one redactor for every error that is recorded, logged or printed.

A provider that refuses a key often quotes it back ("Incorrect API key provided: 'sk-...'"), and
that message would otherwise reach `calls.error`, `debates.error` and the terminal. `redact(text)`
replaces, with `***`:

- the values of the environment variables the config names (`api_key_env` and every other
  `*_env` field; `remember_env`, called when the config is loaded and when a backend is built),
  and of variables whose names say they hold a secret (`OPENAI_API_KEY`, `HF_TOKEN`,
  `AWS_SECRET_ACCESS_KEY`, ...), which providers read by themselves;
- common key shapes: `sk-...` (OpenAI, Anthropic), `hf_...`, GitHub, GitLab, Slack, AWS and
  Google keys, JSON Web Tokens, the credentials after `Bearer` or `Basic`, and a long token with a
  digit in it written right after a word such as `key`, `token`, `secret` or `password`
  (`api_key=3f9a...`, `"token": "..."`, `key provided: '...'`).

It is applied to error texts only, never to what models write: the shapes are chosen so that
ordinary prose passes through unchanged (`max_tokens=512`, "the key point", `sk-learn`), but a
debate about API keys could still lose a word, which is acceptable in an error message and not in
a transcript.

    >>> redactor = Redactor(environ={"MY_KEY": "planted-value-0042"})
    >>> redactor.remember_env(["MY_KEY"])
    >>> redactor("401: Incorrect API key provided: 'planted-value-0042'")
    "401: Incorrect API key provided: '***'"
    >>> redactor("Authorization: Bearer abc.def-123456 refused; api_key=9f86d081884c7d659a2feaa0")
    'Authorization: Bearer *** refused; api_key=***'
    >>> redactor("the key point: max_tokens=512 is not a token of 16 characters")
    'the key point: max_tokens=512 is not a token of 16 characters'

Simplified on purpose: a secret is matched as written, and as it appears JSON- or URL-escaped;
one split across lines, or encoded otherwise (base64 of `user:key`), is caught only by its shape.
Values shorter than `MIN_NAMED_LENGTH` (named by the config) or `MIN_GUESSED_LENGTH` (guessed from a
variable's name) are not redacted: blanking every "1" or "true" would ruin the message and protect
nothing.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import quote

MASK = "***"
"""What a secret is replaced with."""

MIN_NAMED_LENGTH = 4
"""Shortest value of a variable the config names that is redacted."""
MIN_GUESSED_LENGTH = 8
"""Shortest value of a variable only its name marks as secret (`*_API_KEY`, `*_TOKEN`) that is
redacted."""

SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|ACCESS_?KEY|SECRET|SECRET_?KEY|TOKEN|PASSWORD|PASSWD|CREDENTIALS?|KEY)"
    r"(?:$|_)",
    re.IGNORECASE,
)
"""Environment variable names that hold secrets by convention (HF_TOKEN, OPENAI_API_KEY, ...)."""

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # The credentials of an HTTP Authorization header (with a digit: "Basic assumptions" is
    # prose); the scheme stays readable.
    (
        re.compile(r"(?i)\b(Bearer|Basic)\s+(?=[A-Za-z0-9._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{6,}"),
        rf"\1 {MASK}",
    ),
    # Provider key shapes.
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{10,}"), MASK),
    (re.compile(r"\b(?:hf|gh[pousr]|github_pat|glpat)[_\-][A-Za-z0-9_\-]{16,}"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), MASK),
    # JSON Web Tokens: three base64url parts, the first an encoded '{"'.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), MASK),
    # A long token with a digit in it, right after a key-ish word and a separator: `key=...`,
    # `"api_key": "..."`, `token: ...`, `key provided: '...'`. The word and separator stay.
    (
        re.compile(
            r"(?i)(\b(?:api|access|secret|private|client|auth|session|refresh)?[_\- ]?"
            r"(?:key|token|secret|password|passwd|pwd|credential)s?\b"
            r"(?:\s+provided)?[\"']?\s*(?:[:=]|\s)\s*[\"']?)"
            r"(?=[A-Za-z0-9+/_\-.~]*\d)[A-Za-z0-9+/_\-.~]{16,}={0,2}"
        ),
        rf"\1{MASK}",
    ),
)


class Redactor:
    """Replaces secrets in error texts with `MASK`: known values first, then key shapes.

    The values are read from the environment at each call (a variable named by the config, or
    whose name marks it as secret), together with any value given to `remember`; the pattern of
    known values is rebuilt only when they change. Thread-safe: backends may raise from threads.
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        """`environ`: where variables are read (default: `os.environ`, read at each call)."""
        self._environ = environ
        self._names: set[str] = set()
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._known: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def remember_env(self, names: Iterable[str | None]) -> None:
        """Treat the values of these environment variables as secrets (names from the config)."""
        environ = self._environ if self._environ is not None else os.environ
        with self._lock:
            for name in names:
                if name:
                    self._names.add(name)
                    value = environ.get(name)
                    if value and len(value) >= MIN_NAMED_LENGTH:
                        self._values.add(value)

    def remember(self, value: str | None) -> None:
        """Treat this value as a secret (a key read some other way)."""
        if value and len(value) >= MIN_NAMED_LENGTH:
            with self._lock:
                self._values.add(value)

    def secrets(self) -> frozenset[str]:
        """Every value redacted now: remembered, named by the config, or guessed by name."""
        environ = self._environ if self._environ is not None else os.environ
        with self._lock:
            found = set(self._values)
            names = set(self._names)
        for name, value in environ.items():
            named = name in names and len(value) >= MIN_NAMED_LENGTH
            if named or (len(value) >= MIN_GUESSED_LENGTH and SECRET_NAME.search(name)):
                found.add(value)
        return frozenset(found)

    def _known_pattern(self) -> re.Pattern[str] | None:
        """One alternation of every secret and its escaped forms, longest first."""
        known = self.secrets()
        with self._lock:
            if known != self._known:
                forms: set[str] = set()
                for value in known:
                    forms |= {value, json.dumps(value)[1:-1], quote(value, safe="")}
                ordered = sorted(forms, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
                self._known = known
            return self._pattern

    def __call__(self, text: str) -> str:
        """`text` with every secret it contains replaced by `MASK`."""
        pattern = self._known_pattern()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for shape, replacement in _SHAPES:
            text = shape.sub(replacement, text)
        return text


REDACTOR = Redactor()
"""The process's redactor: config loading and backends tell it what to hide."""


def redact(text: str) -> str:
    """`text` with the secrets `REDACTOR` knows of, and key shapes, replaced by `***`."""
    return REDACTOR(text)


def remember_env(names: Iterable[str | None]) -> None:
    """Hide the values of these environment variables (named by the config) from error texts."""
    REDACTOR.remember_env(names)


def is_clean(text: str) -> bool:
    """Whether `text` holds nothing `redact` would hide (so it may be shown as it is)."""
    return redact(text) == text
