"""Fields of the prediction and feedback logs encrypted at rest: Fernet, keys from secrets.

A service's `logging.encrypt` names fields (fnmatch patterns, like `mask`); their values are
written to the log (and its spool) as `"$enc:<Fernet token>"`, the token holding the value's
JSON text. Everything else in a row stays plain, so queries on times, variants and outputs
work as before. Keys come from `${secret:NAME}` references: `encryption_key` encrypts,
`previous_keys` still decrypt (MultiFernet), so rows written before a rotation stay readable.

Readers with the keys get the plain JSON back (`open_text` replaces each token in a column's
text); readers without them see the `$enc:` marker, never an error. A field that is both masked
and encrypted is masked: the mask wins, and validation reports the overlap (E708).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipyard.errors import ShipyardError
from shipyard.secrets import SECRET_REFERENCE, env_name, secret_value
from shipyard.serving.masking import Masker

if TYPE_CHECKING:
    from shipyard.compiler.services import LogEncryptionPlan, ServiceStep

log = logging.getLogger("shipyard.serving")

ENCRYPTED = "$enc:"
"""Starts the logged value of an encrypted field: `$enc:<Fernet token>`."""
MIN_SECRET_LENGTH = 32
"""Characters a key's secret needs at least: it is used as key material, not stretched."""
_TOKEN = re.compile(r'"\$enc:([A-Za-z0-9_\-]+=*)"')
_INFO = b"shipyard prediction log encryption v1"
_LAYOUTS = 256
_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class LogKeyError(ShipyardError):
    """A log encryption key is missing, too weak, or does not open the rows already logged."""


def derive_key(secret: str) -> bytes:
    """The Fernet key (urlsafe base64 of 32 bytes) derived from a secret by HKDF-SHA256."""
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(material)


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=str, option=_ORJSON)
    except TypeError:  # keys orjson cannot write (e.g. tuples): the standard library can
        return json.dumps(value, default=str, separators=(",", ":")).encode()


class FieldCipher:
    """Encrypts the values of the fields a service lists under `logging.encrypt`."""

    def __init__(self, patterns: Sequence[str], keys: Sequence[str], masked: Sequence[str] = ()):
        """Derive the keys and compile the patterns.

        Args:
            patterns: fnmatch patterns on field names, case-insensitive (as `logging.mask`).
            keys: The secrets' values; the first encrypts, every one decrypts.
            masked: The service's mask patterns: a field matching one is masked, not encrypted.
        """
        if not keys:
            raise ValueError("a FieldCipher needs at least one key")
        self.patterns = tuple(patterns)
        self._fields = Masker(self.patterns)
        self._masked = Masker(masked)
        self._fernet = MultiFernet([Fernet(derive_key(key)) for key in keys])
        self._layouts: dict[tuple[str, ...], tuple[str, ...]] = {}

    def encrypts(self, field: str) -> bool:
        """Whether the field's value is written encrypted (it is listed and not masked)."""
        return self._fields.masks(field) and not self._masked.masks(field)

    def seal_value(self, value: Any) -> str:
        """The value as it is logged: `$enc:` and the Fernet token of its JSON text."""
        return ENCRYPTED + self._fernet.encrypt(_json(value)).decode("ascii")

    def seal_flat(self, row: dict[str, Any]) -> dict[str, Any]:
        """A flat row with the listed fields' values sealed; which keys, decided once per key
        layout; a row with nothing to seal is returned as it is."""
        keys = tuple(row)
        sealed = self._layouts.get(keys)
        if sealed is None:
            sealed = tuple(key for key in keys if isinstance(key, str) and self.encrypts(key))
            # Layouts come from requests: cap the cache so clients cannot grow it forever.
            if len(self._layouts) < _LAYOUTS:
                self._layouts[keys] = sealed
        if not sealed:
            return row
        out = dict(row)
        for key in sealed:
            out[key] = self.seal_value(out[key])
        return out

    def seal_batch(self, record: dict[str, Any]) -> dict[str, Any]:
        """A columnar batch record (`columns`, `rows` without the `masked` columns) with the
        listed columns' cells sealed."""
        masked = set(record.get("masked") or ())
        shown = [column for column in record["columns"] if column not in masked]
        positions = {i for i, column in enumerate(shown) if self.encrypts(column)}
        if not positions:
            return record
        seal = self.seal_value
        rows = [
            [seal(value) if i in positions else value for i, value in enumerate(row)]
            for row in record["rows"]
        ]
        return {**record, "rows": rows}

    def seal(self, value: Any) -> Any:
        """A copy of dicts and lists with the listed fields' values sealed, at any depth (a
        sealed field's whole value, nested or not, is one token)."""
        if isinstance(value, dict):
            return {
                key: self.seal_value(item)
                if isinstance(key, str) and self.encrypts(key)
                else self.seal(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.seal(item) for item in value]
        return value

    def open_text(self, text: str) -> str:
        """A logged JSON column with every token this cipher's keys open replaced by the value's
        JSON; a token none of them opens stays as its `$enc:` marker."""
        if ENCRYPTED not in text:
            return text
        return _TOKEN.sub(self._open_match, text)

    def _open_match(self, match: re.Match[str]) -> str:
        try:
            return self._fernet.decrypt(match.group(1).encode("ascii")).decode()
        except (InvalidToken, ValueError):
            return match.group(0)

    def opens(self, texts: Iterable[str]) -> tuple[int, int]:
        """(tokens seen, tokens opened) in logged JSON columns."""
        seen = opened = 0
        for text in texts:
            for match in _TOKEN.finditer(text):
                seen += 1
                opened += self._open_match(match) != match.group(0)
        return seen, opened

    def open_row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A row of the log with its text columns opened."""
        return tuple(self.open_text(v) if isinstance(v, str) else v for v in row)


def _references(plan: LogEncryptionPlan) -> list[tuple[str, str]]:
    """(setting, secret name) of the encrypting key, then the previous keys."""
    settings = [("logging.encryption_key", plan.key)] + [
        (f"logging.previous_keys[{i}]", key) for i, key in enumerate(plan.previous_keys)
    ]
    out = []
    for setting, reference in settings:
        match = SECRET_REFERENCE.fullmatch(reference.strip())
        if match is None:
            raise LogKeyError(
                f"{setting} of the log encryption is not a ${{secret:NAME}} reference",
                hint='write `encryption_key: "${secret:<service>-log-key}"` and keep the key '
                "in that secret",
            )
        out.append((setting, match.group(1)))
    return out


def cipher_for(
    plan: LogEncryptionPlan | None,
    service: str,
    masked: Sequence[str] = (),
    use_prefect: bool = True,
) -> FieldCipher | None:
    """The cipher of a service's log (None without `logging.encrypt`), its keys resolved now.

    Raises:
        LogKeyError: A key's secret is not set, or too short to be a key; naming the service,
            the secret and the fix.
    """
    if plan is None or not plan.fields:
        return None
    keys = []
    for setting, name in _references(plan):
        try:
            value = secret_value(name, use_prefect)
        except ShipyardError:
            raise LogKeyError(
                f"service '{service}': the log encryption key `{setting}` names secret "
                f"'{name}', which is not set; the service does not start without it",
                hint=f"create the Prefect Secret block '{name}' or export {env_name(name)}, "
                f"holding a random key of {MIN_SECRET_LENGTH}+ characters ({_GENERATE})",
                resource=f"service.{service}",
            ) from None
        if len(value.strip()) < MIN_SECRET_LENGTH:
            raise LogKeyError(
                f"service '{service}': secret '{name}' ({setting}) holds {len(value.strip())} "
                f"characters; a log encryption key needs at least {MIN_SECRET_LENGTH}",
                hint=f"put a random key in it ({_GENERATE}); a key already used to write rows "
                "moves to `previous_keys` when it is replaced",
                resource=f"service.{service}",
            )
        keys.append(value.strip())
    return FieldCipher(plan.fields, keys, masked)


def reader_cipher(plan: LogEncryptionPlan | None, service: str) -> FieldCipher | None:
    """The cipher for reading a service's log, or None (with a warning) when its keys cannot be
    had here: the reader then shows the `$enc:` markers."""
    try:
        return cipher_for(plan, service)
    except LogKeyError as exc:
        log.warning("%s; encrypted fields are shown as %s<token> (%s)", exc, ENCRYPTED, exc.hint)
        return None


SAMPLE = 200
"""Latest rows of each log table whose tokens the key check tries."""


def check_keys(cipher: FieldCipher | None, url: str, service: str, plan: LogEncryptionPlan) -> None:
    """Fail fast when the keys open none of the tokens in the latest rows of the service's log
    (the key was replaced without keeping the old one in `previous_keys`).

    Raises:
        LogKeyError: Naming the service, the secret and the fix.
        ServiceUnavailable: The log cannot be read.
    """
    if cipher is None:
        return
    from shipyard.serving.predlog import LogReader

    reader = LogReader(url)
    texts: list[str] = []
    for table, columns in (("predictions", "inputs"), ("feedback", "entity, outcome")):
        sql = (
            f"SELECT {columns} FROM {table} WHERE service = {{p}} ORDER BY time DESC LIMIT {SAMPLE}"
        )
        for row in reader.stream(sql, [service]):
            texts += [v for v in row if isinstance(v, str) and ENCRYPTED in v]
    seen, opened = cipher.opens(texts)
    if seen and not opened:
        secret = _references(plan)[0][1]
        raise LogKeyError(
            f"service '{service}': the log encryption key (secret '{secret}') opens none of the "
            f"{seen} encrypted values in the latest rows of its prediction log; the service "
            "does not start with a key that cannot read its log",
            hint="put the key the rows were written with back in that secret, or, after a "
            "rotation, list the old key's secret under `logging.previous_keys`",
            resource=f"service.{service}",
        )


def service_cipher(step: ServiceStep, use_prefect: bool = True) -> FieldCipher | None:
    """The cipher a service starts with: its keys resolved, and checked against its log.

    Raises:
        LogKeyError: A key is missing, too short, or opens none of the rows already logged.
        ServiceUnavailable: The log cannot be read.
    """
    encryption = step.log_encryption
    if encryption is None:
        return None
    cipher = cipher_for(encryption, step.service, step.mask, use_prefect)
    check_keys(cipher, step.log_database, step.service, encryption)
    return cipher
